// Small C helpers for what Swift cannot express directly: CPU-set macros (CPU_SET, CPU_ZERO), the libnuma
// global `numa_all_nodes_ptr` that Swift 6 rejects, and the spin-wait hint.
#ifndef LOOM_CSUPPORT_H
#define LOOM_CSUPPORT_H

#include <stdint.h>

/// Pins the calling thread to one CPU. Returns 0 on success, an errno value otherwise.
int loom_pin_current_thread(int cpu);
/// The CPU the calling thread runs on now (sched_getcpu), or -1.
int loom_current_cpu(void);
/// Writes the CPUs this process may run on (sched_getaffinity) into `cpus`; returns how many (at most `max`),
/// or -1 on error.
int loom_allowed_cpus(int *cpus, int max);
/// A hint to the core that we are spinning (x86 `pause`).
void loom_cpu_relax(void);
/// Gives the CPU away (sched_yield).
void loom_yield(void);

/// Installs SIGINT and SIGTERM handlers that record the first signal. A repeat within one second of it, or any
/// signal between loom_critical_begin and loom_critical_end, is ignored (the same stop delivered twice); a later
/// one exits at once with 128 + the signal number.
void loom_install_signal_handlers(void);
/// The first SIGINT/SIGTERM received since installing, or 0.
int loom_pending_signal(void);
/// Brackets a file write that a second signal must not cut short (checkpoints, final weights, reports).
void loom_critical_begin(void);
void loom_critical_end(void);
/// stdout line-buffered and stderr unbuffered, so that no complete line is lost on any exit path.
void loom_line_buffer_output(void);

/// 1 when libnuma works on this machine (numa_available() >= 0), else 0.
int loom_numa_available(void);
/// Highest NUMA node number (numa_max_node), or -1.
int loom_numa_max_node(void);
/// Writes the CPUs of `node` into `cpus`; returns how many (at most `max`), or -1 if the node does not exist.
int loom_numa_node_cpus(int node, int *cpus, int max);
/// Total memory of `node` in bytes (numa_node_size64), or -1.
long long loom_numa_node_memory(int node, long long *free_bytes);
/// Memory on `node` (numa_alloc_onnode); release with loom_numa_free.
void *loom_numa_alloc_onnode(uint64_t bytes, int node);
void loom_numa_free(void *p, uint64_t bytes);
/// Binds the pages of [p, p + bytes) (page-aligned) to `node` and moves those already placed elsewhere
/// (mbind with MPOL_MF_MOVE). Returns 0 on success.
int loom_numa_move(void *p, uint64_t bytes, int node);

#endif
