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

#endif
