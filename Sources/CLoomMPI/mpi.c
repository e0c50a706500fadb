#include "CLoomMPI.h"

#ifdef LOOM_MPI
#include <mpi.h>
#include <stdio.h>

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

#endif
