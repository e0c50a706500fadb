#define _GNU_SOURCE
#include "CSupport.h"
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int loom_pin_current_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int loom_current_cpu(void) { return sched_getcpu(); }

int loom_allowed_cpus(int *cpus, int max) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, &set)) cpus[n++] = c;
    return n;
}

void loom_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void loom_yield(void) { sched_yield(); }

int loom_numa_available(void) { return numa_available() >= 0 ? 1 : 0; }

int loom_numa_max_node(void) { return numa_available() >= 0 ? numa_max_node() : -1; }

int loom_numa_node_cpus(int node, int *cpus, int max) {
    if (numa_available() < 0 || node < 0 || node > numa_max_node()) return -1;
    struct bitmask *mask = numa_allocate_cpumask();
    if (!mask) return -1;
    int n = -1;
    if (numa_node_to_cpus(node, mask) == 0) {
        n = 0;
        for (unsigned c = 0; c < mask->size && n < max; c++)
            if (numa_bitmask_isbitset(mask, c)) cpus[n++] = (int)c;
    }
    numa_free_cpumask(mask);
    return n;
}

long long loom_numa_node_memory(int node, long long *free_bytes) {
    if (numa_available() < 0) return -1;
    return numa_node_size64(node, free_bytes);
}

void *loom_numa_alloc_onnode(uint64_t bytes, int node) {
    if (numa_available() < 0) return NULL;
    return numa_alloc_onnode(bytes, node);
}

void loom_numa_free(void *p, uint64_t bytes) { numa_free(p, bytes); }

int loom_numa_move(void *p, uint64_t bytes, int node) {
    if (numa_available() < 0 || node < 0 || node > numa_max_node()) return -1;
    unsigned long mask[16] = {0};
    if (node >= (int)(sizeof mask * 8)) return -1;
    mask[node / (8 * sizeof(unsigned long))] = 1UL << (node % (8 * sizeof(unsigned long)));
    return (int)mbind(p, bytes, MPOL_BIND, mask, sizeof mask * 8, MPOL_MF_MOVE);
}

/* Graceful stop on SIGINT/SIGTERM. The first signal is recorded; the trainer finishes its step, checkpoints and
 * exits. The same stop often arrives more than once within microseconds (`timeout` signals the child and its
 * process group, Ctrl-C in a shell signals the whole group, schedulers repeat themselves), so a signal within
 * the grace period of the first, or while a checkpoint or the final weights are being written, is ignored.
 * Only a deliberate later one exits at once (the files on disk are only ever renamed into place, so they stay
 * whole; stdout is line-buffered, so no complete line is lost). */
#define LOOM_SIGNAL_GRACE_NS 1000000000LL

static volatile sig_atomic_t pending_signal = 0;
static volatile sig_atomic_t critical_depth = 0;
static volatile long long first_signal_ns = 0;

static long long monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* async-signal-safe */
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void on_signal(int sig) {
    long long now = monotonic_ns();
    if (pending_signal == 0) {
        first_signal_ns = now;
        pending_signal = sig;
        return;
    }
    if (critical_depth > 0 || now - first_signal_ns < LOOM_SIGNAL_GRACE_NS) return;
    static const char message[] = "\nloom: a second interrupt: stopping at once (checkpoints on disk are whole)\n";
    ssize_t ignored = write(STDERR_FILENO, message, sizeof message - 1);
    (void)ignored;
    _exit(128 + sig);
}

void loom_install_signal_handlers(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGINT); /* one handler at a time */
    sigaddset(&action.sa_mask, SIGTERM);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    /* A parent may have started us with these blocked (the mask is inherited across exec): unblock them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void loom_critical_begin(void) { critical_depth = critical_depth + 1; }

void loom_critical_end(void) { critical_depth = critical_depth - 1; }

void loom_line_buffer_output(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);
}

int loom_pending_signal(void) { return pending_signal; }
