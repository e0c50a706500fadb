// The communication of the two shapes of a data-parallel step across ranks, timed with the byte counts of a
// model and batch, on whatever transport mpirun gives (README, "Multi-process and multi-node").
//
//   (a) owner-computes (what Loom does): all-gather the activations and output gradients that the parameter
//       owners need (every rank's rows of each layer's input after the first, and of each layer's ∂L/∂z), then
//       all-gather the updated parameter slices;
//   (b) partial gradients: reduce-scatter every rank's partial weight gradient (over its own rows) so that each
//       rank holds the sum for its parameter slice, then all-gather the updated slices. (Loom would need the sum
//       over fixed micro-shards of the batch, in a fixed order, for its digests to stay equal for every rank
//       count; with 2 ranks a reduce-scatter's one addition is that already.)
//
// The compute of the two shapes is the same products (each weight gradient split by parameters in (a), by rows
// in (b)), so the step differs by these collectives (and (b)'s extra sums). Usage:
//   mpicc -O2 Benchmarks/mpi/shapes.c -o /tmp/shapes
//   mpirun -np 2 /tmp/shapes BATCH WIDTH0 WIDTH1 ... (the layer widths, input first: 784 512 10)
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

// Seconds per step of `step` run `rounds` times back to back (as a training loop would: a capped network's
// burst allowance is spent after the first few), the slowest rank's.
static double per_step(int rounds, void (*step)(void)) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t = MPI_Wtime();
    for (int r = 0; r < rounds; r++) step();
    t = (MPI_Wtime() - t) / rounds;
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t;
}

static int ranks, rank, layers, batch;
static int *widths;
static long parameters;
static float *activations, *gradients, *weights;
static int *counts, *displacements;

// Rank r's share of n things, as the step cuts them (the first n % ranks ranks take one more).
static void split(long n, long scale) {
    for (int r = 0, start = 0; r < ranks; r++) {
        int c = (int)(n / ranks + (r < n % ranks));
        counts[r] = (int)(c * scale);
        displacements[r] = (int)(start * scale);
        start += c;
    }
}

static void shape_a(void) {
    for (int l = 0; l < layers; l++) {
        if (l > 0) {  // the layer's input: the previous layer's output rows
            split(batch, widths[l]);
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, activations, counts, displacements, MPI_FLOAT,
                           MPI_COMM_WORLD);
        }
        split(batch, widths[l + 1]);  // ∂L/∂z of the layer
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, gradients, counts, displacements, MPI_FLOAT,
                       MPI_COMM_WORLD);
    }
    split(parameters, 1);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, weights, counts, displacements, MPI_FLOAT, MPI_COMM_WORLD);
}

static void shape_b(void) {
    split(parameters, 1);
    MPI_Reduce_scatter(gradients, weights + displacements[rank], counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, weights, counts, displacements, MPI_FLOAT, MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc < 4) {
        if (rank == 0) fprintf(stderr, "usage: shapes BATCH WIDTH0 WIDTH1 [WIDTH2 ...]\n");
        MPI_Finalize();
        return 2;
    }
    batch = atoi(argv[1]);
    layers = argc - 3;
    widths = malloc(sizeof(int) * (size_t)(layers + 1));
    long widest = 0;
    for (int i = 0; i <= layers; i++) {
        widths[i] = atoi(argv[i + 2]);
        if (widths[i] > widest) widest = widths[i];
    }
    for (int l = 0; l < layers; l++) parameters += (long)widths[l] * widths[l + 1] + widths[l + 1];
    counts = malloc(sizeof(int) * (size_t)ranks);
    displacements = malloc(sizeof(int) * (size_t)ranks);
    long big = parameters > batch * widest ? parameters : batch * widest;
    activations = calloc((size_t)big, sizeof(float));
    gradients = calloc((size_t)big, sizeof(float));
    weights = calloc((size_t)big, sizeof(float));
    // Bytes each rank sends per step.
    double a_bytes = 0, b_bytes;
    for (int l = 0; l < layers; l++) a_bytes += (double)batch * ((l > 0 ? widths[l] : 0) + widths[l + 1]);
    a_bytes = (a_bytes + parameters) * 4.0 / ranks;
    b_bytes = 2.0 * parameters * 4.0 / ranks;  // (R − 1)/R of it leaves the rank in a ring; the same for (a)
    for (int warm = 0; warm < 20; warm++) { shape_a(); shape_b(); }
    double ta = 1e9, tb = 1e9;
    for (int round = 0; round < 5; round++) {  // alternated, each keeps its best mean
        double a = per_step(20, shape_a), b = per_step(20, shape_b);
        if (a < ta) ta = a;
        if (b < tb) tb = b;
    }
    if (rank == 0) {
        printf("%d ranks, batch %d, %ld parameters\n", ranks, batch, parameters);
        printf("(a) owner-computes: %8.2f MB a rank's share, %8.3f ms\n", a_bytes / 1e6, ta * 1e3);
        printf("(b) partial grads:  %8.2f MB a rank's share, %8.3f ms\n", b_bytes / 1e6, tb * 1e3);
    }
    MPI_Finalize();
    return 0;
}
