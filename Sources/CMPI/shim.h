// Open MPI's C API (libopenmpi-dev), for the optional MPI trait: `swift build --traits MPI`.
#include <mpi.h>
