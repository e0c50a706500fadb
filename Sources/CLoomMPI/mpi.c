#include "CLoomMPI.h"

#ifdef LOOM_MPI
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int loom_mpi_compiled(void) { return 1; }

int loom_mpi_init(int *rank, int *size, char *error, int length) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) {
        snprintf(error, length, "MPI_Init_thread failed (error %d)", rc);
        return 1;
    }
    if (provided < MPI_THREAD_SERIALIZED) {
        snprintf(error, length, "this MPI library gives thread level %d; Loom needs MPI_THREAD_SERIALIZED (%d)",
                 provided, MPI_THREAD_SERIALIZED);
        return 1;
    }
    // Errors return codes (checked by Loom) instead of aborting inside the library.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 0;
}

void loom_mpi_finalize(void) { MPI_Finalize(); }

void loom_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void loom_mpi_processor_name(char *name, int length) {
    char buffer[MPI_MAX_PROCESSOR_NAME];
    int n = 0;
    MPI_Get_processor_name(buffer, &n);
    snprintf(name, length, "%.*s", n, buffer);
}

int loom_mpi_allgatherv_floats(float *buffer, const int *counts, const int *displacements) {
    return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, counts, displacements, MPI_FLOAT,
                          MPI_COMM_WORLD);
}

int loom_mpi_allgather_bytes(const void *send, int count, void *receive) {
    return MPI_Allgather(send, count, MPI_BYTE, receive, count, MPI_BYTE, MPI_COMM_WORLD);
}

int loom_mpi_allreduce_sum_doubles(const double *send, double *receive, int count) {
    return MPI_Allreduce(send, receive, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int loom_mpi_allreduce_max_int(int value) {
    int result = value;
    MPI_Allreduce(&value, &result, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return result;
}

// Datatypes are kept here by handle: Swift cannot hold an MPI_Datatype portably (a pointer in Open MPI, an
// int in MPICH). A run makes a few per layer at its start.
enum { loom_max_blocks = 1024 };
static MPI_Datatype loom_blocks[loom_max_blocks];
static int loom_blocks_used = 0;

int loom_mpi_float_blocks(int count, const int *lengths, const int *displacements) {
    if (loom_blocks_used == loom_max_blocks) return -1;
    MPI_Datatype type;
    if (MPI_Type_indexed(count, lengths, displacements, MPI_FLOAT, &type) != MPI_SUCCESS) return -1;
    if (MPI_Type_commit(&type) != MPI_SUCCESS) return -1;
    loom_blocks[loom_blocks_used] = type;
    return loom_blocks_used++;
}

void loom_mpi_free_blocks(int handle) {
    int finalized = 0;
    MPI_Finalized(&finalized);  // a trainer may outlive MPI: its types went with it
    if (!finalized && handle >= 0 && handle < loom_blocks_used && loom_blocks[handle] != MPI_DATATYPE_NULL) {
        MPI_Type_free(&loom_blocks[handle]);
        loom_blocks[handle] = MPI_DATATYPE_NULL;
    }
}

// Requests posted and not yet waited for (loom_mpi_start_allgatherv's, until loom_mpi_finish_started; an
// exchange's own, until it returns), in an array that grows at the first steps and is then reused.
static MPI_Request *loom_started = NULL;
static int loom_started_count = 0, loom_started_capacity = 0;

// Posts, in place, a receive of every peer's block of `buffer` and a send of this rank's block to every peer:
// blocks of `counts[r]` floats at `displacements[r]`, or (with `handles`) where rank r's datatype places them.
// Receives first, then sends, each peer in ring order after this rank (no two ranks wait on the same peer
// first). Both ranks of a pair post in the same order (the same plan), so messages with one tag match in order
// (MPI never reorders two messages between a pair on one tag).
static int loom_post_exchange(float *buffer, const int *counts, const int *displacements, const int *handles) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (loom_started_count + 2 * size > loom_started_capacity) {
        int capacity = loom_started_count + 8 * size;
        MPI_Request *grown = realloc(loom_started, sizeof(MPI_Request) * (size_t)capacity);
        if (grown == NULL) return MPI_ERR_NO_MEM;
        loom_started = grown;
        loom_started_capacity = capacity;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 1; i < size; i++) {
            int peer = pass == 0 ? (rank + size - i) % size : (rank + i) % size;
            int owner = pass == 0 ? peer : rank;  // whose block travels
            // With datatypes (`handles`): one item of the owner's type over the whole buffer; else floats.
            float *at = handles ? buffer : buffer + displacements[owner];
            int count = handles ? 1 : counts[owner];
            MPI_Datatype type = handles ? loom_blocks[handles[owner]] : MPI_FLOAT;
            MPI_Request *request = &loom_started[loom_started_count++];
            int rc = pass == 0 ? MPI_Irecv(at, count, type, peer, 7341, MPI_COMM_WORLD, request)
                               : MPI_Isend(at, count, type, peer, 7341, MPI_COMM_WORLD, request);
            if (rc != MPI_SUCCESS) return rc;
        }
    }
    return MPI_SUCCESS;
}

int loom_mpi_start_allgatherv(float *buffer, const int *counts, const int *displacements) {
    return loom_post_exchange(buffer, counts, displacements, NULL);
}

int loom_mpi_finish_started(void) {
    int rc = MPI_Waitall(loom_started_count, loom_started, MPI_STATUSES_IGNORE);
    loom_started_count = 0;
    return rc;
}

int loom_mpi_exchange_blocks(float *buffer, const int *handles) {
    int rc = loom_post_exchange(buffer, NULL, NULL, handles);
    int done = loom_mpi_finish_started();
    return rc != MPI_SUCCESS ? rc : done;
}

#else  // built without the MPI trait: one process

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

int loom_mpi_compiled(void) { return 0; }
int loom_mpi_init(int *rank, int *size, char *error, int length) {
    *rank = 0;
    *size = 1;
    snprintf(error, length, "this loom was built without MPI");
    return 1;
}
void loom_mpi_finalize(void) {}
void loom_mpi_abort(int code) { exit(code); }
void loom_mpi_processor_name(char *name, int length) { snprintf(name, length, "localhost"); }
int loom_mpi_allgatherv_floats(float *buffer, const int *counts, const int *displacements) {
    (void)buffer, (void)counts, (void)displacements;
    return 0;
}
int loom_mpi_allgather_bytes(const void *send, int count, void *receive) {
    memcpy(receive, send, (size_t)count);
    return 0;
}
int loom_mpi_allreduce_sum_doubles(const double *send, double *receive, int count) {
    memmove(receive, send, (size_t)count * sizeof(double));
    return 0;
}
int loom_mpi_allreduce_max_int(int value) { return value; }

int loom_mpi_float_blocks(int count, const int *lengths, const int *displacements) {
    (void)count, (void)lengths, (void)displacements;
    return -1;
}
void loom_mpi_free_blocks(int handle) { (void)handle; }
int loom_mpi_exchange_blocks(float *buffer, const int *handles) {
    (void)buffer, (void)handles;
    return 0;
}

int loom_mpi_start_allgatherv(float *buffer, const int *counts, const int *displacements) {
    (void)buffer, (void)counts, (void)displacements;
    return 0;
}
int loom_mpi_finish_started(void) { return 0; }

#endif
