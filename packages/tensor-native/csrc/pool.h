// The decode kernels' own worker threads: a parallel loop that never waits for a sleeping worker to wake.
//
// Why not OpenMP: a decode step makes about seven parallel products per layer with a little JavaScript between them
// (a 2B token: ~170 loops of 50-500 us). The addon runs OpenMP's idle workers PASSIVE (asleep, so that they leave the
// cores to OpenBLAS's threads in training), and an OpenMP loop ends at a barrier that waits for every worker, so each
// loop paid a sleeping worker's wake-up: 50-70 us on a virtual machine, as long as a 2B product itself. Here the calling
// thread takes tasks from the start and waits only for tasks that a worker has begun, never for a worker to wake: a
// worker that wakes late finds the tasks taken and goes back to sleep. Measured in one process, alternating with the
// OpenMP loops (bench/README.md, "Stop 31"): a 2B int4 token 9% less wall time, a 4-sequence step 23% less.
// Idle workers spin 1000 us before they sleep (`setDecodeSpinMicros`, YUAN_DECODE_SPIN_US; 0 sleeps at once), so that
// they are awake through a step's products: a 4-sequence 2B step 7-10% faster than with workers that sleep at once
// (one-sequence steps the same, for 6-9% more CPU; 200-300 us did not pay). Training's kernels never wake them.
#pragma once
#include <cstdint>
#include <type_traits>

namespace ynk {

// Runs body(ctx, t) for every t in [0, tasks) on `threads` threads: the calling thread and threads − 1 pool workers,
// tasks taken dynamically (one at a time). Serial when threads <= 1, tasks <= 1, or when another thread is using the
// pool at the moment (a second JavaScript thread decoding at once). Workers start on first use.
void poolRun(int threads, int64_t tasks, void (*body)(void*, int64_t), void* ctx);

// The same with a callable f(t).
template <class F>
void parallelTasks(int threads, int64_t tasks, F&& f) {
  if (threads <= 1 || tasks <= 1) {
    for (int64_t t = 0; t < tasks; t++) f(t);
    return;
  }
  using Fn = typename std::remove_reference<F>::type;
  poolRun(
      threads, tasks, [](void* c, int64_t t) { (*static_cast<Fn*>(c))(t); }, static_cast<void*>(&f));
}

// This thread's scratch of at least `floats` floats for the task it is running (kept between calls: no allocation per
// task; its contents are whatever the thread's last task left). Valid until the thread asks again: a task must not
// run another parallel loop while it holds it.
float* taskScratch(int64_t floats);

// How long (microseconds, at most 10 s) an idle pool worker spins before it sleeps (default 1000); 0 sleeps at once.
// Returns the value in force.
int64_t setDecodeSpinMicros(int64_t micros);
int64_t decodeSpinMicros();

}  // namespace ynk
