// The few MPI calls Loom makes, as plain C functions: Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM …)
// are macros over globals that Swift cannot import. Without the MPI trait every function is a stub: the build
// and the tests need no MPI installed, and loom_mpi_compiled() says 0.
#ifndef CLOOMMPI_H
#define CLOOMMPI_H

/// 1 when built with the MPI trait, else 0.
int loom_mpi_compiled(void);
/// MPI_Init_thread asking for MPI_THREAD_SERIALIZED; fills rank and size. 0 on success, else a message in
/// `error` (at most `length` bytes, NUL-terminated).
int loom_mpi_init(int *rank, int *size, char *error, int length);
void loom_mpi_finalize(void);
/// Ends every rank of the job (after this rank has printed why).
void loom_mpi_abort(int code);
/// This rank's host name (MPI_Get_processor_name), NUL-terminated.
void loom_mpi_processor_name(char *name, int length);
/// In place: rank r's `counts[r]` floats sit at `displacements[r]` of `buffer`; afterwards every rank has all.
int loom_mpi_allgatherv_floats(float *buffer, const int *counts, const int *displacements);
/// `count` bytes from every rank into `receive` (size × count bytes, in rank order).
int loom_mpi_allgather_bytes(const void *send, int count, void *receive);
/// Element-wise sum over ranks of `count` doubles, from `send` into `receive`.
int loom_mpi_allreduce_sum_doubles(const double *send, double *receive, int count);
/// The largest of every rank's value.
int loom_mpi_allreduce_max_int(int value);

/// A datatype of `count` blocks of floats (`lengths[i]` floats at `displacements[i]` floats from a buffer's
/// start), committed; its handle (≥ 0), or −1 when MPI refuses it. Made once per run, freed with
/// loom_mpi_free_blocks.
int loom_mpi_float_blocks(int count, const int *lengths, const int *displacements);
void loom_mpi_free_blocks(int handle);
/// In place, like loom_mpi_allgatherv_floats: rank r's values lie in `buffer` where its datatype `handles[r]`
/// says (disjoint blocks); each rank sends its own to every other one and receives theirs.
int loom_mpi_exchange_blocks(float *buffer, const int *handles);
/// Starts, without waiting, what loom_mpi_allgatherv_floats does (in place: rank r's `counts[r]` floats at
/// `displacements[r]` reach every rank), as a send to and a receive from each peer; `buffer`'s blocks must
/// not be touched until loom_mpi_finish_started returns. Every rank starts the same gathers in the same order.
int loom_mpi_start_allgatherv(float *buffer, const int *counts, const int *displacements);
/// Waits for every gather started since the last call.
int loom_mpi_finish_started(void);

#endif
