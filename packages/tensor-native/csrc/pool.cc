#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#ifdef __x86_64__
#include <immintrin.h>
#endif

namespace ynk {
namespace {

inline void relax() {
#ifdef __x86_64__
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// YUAN_DECODE_SPIN_US is read (and checked) by weightKernels() in src/weights.ts
std::atomic<int64_t> spinMicros{1000};

// One loop at a time. `state` holds the loop's generation (high 32 bits) and its next unclaimed task (low 32 bits):
// a worker claims a task with a compare-and-swap that fails once the caller has moved on to another loop, so a worker
// that wakes late never runs a task of the wrong loop, and the caller waits only for tasks, never for a worker to wake.
class Pool {
 public:
  bool tryAcquire() { return !busy_.exchange(true, std::memory_order_acquire); }
  void release() { busy_.store(false, std::memory_order_release); }

  void run(int threads, int64_t tasks, void (*body)(void*, int64_t), void* ctx) {
    while (workers_ < threads - 1) {
      const int id = workers_ + 1;
      std::thread([this, id] { work(id); }).detach();
      workers_ = id;
    }
    // a sequence lock on the loop's fields: `loop_` moves first, so a worker that read any of the new fields while it
    // still took them for the old loop's sees a `loop_` that no longer matches
    const uint64_t gen = (loop_.load(std::memory_order_relaxed) + 1) & 0xffffffffu;
    loop_.store(gen, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    body_.store(body, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    tasks_.store(tasks, std::memory_order_relaxed);
    active_.store(threads, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    state_.store(gen << 32, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(mutex_); }
      wake_.notify_all();
    }
    int64_t mine = 0;
    for (int64_t t; (t = claim(gen, tasks)) >= 0; mine++) body(ctx, t);
    if (mine) done_.fetch_add(mine, std::memory_order_acq_rel);
    while (done_.load(std::memory_order_acquire) < tasks) relax();
  }

 private:
  // The next task of loop `gen`, or −1 when that loop has none left (or is over).
  int64_t claim(uint64_t gen, int64_t tasks) {
    uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      if ((s >> 32) != gen || int64_t(s & 0xffffffffu) >= tasks) return -1;
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire))
        return int64_t(s & 0xffffffffu);
    }
  }

  [[noreturn]] void work(int id) {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    // a worker left out of the last loop (the thread count went down since it started) sleeps at once instead of
    // spinning beside the ones that take part
    bool left = false;
    for (;;) {
      uint64_t g = generation_.load(std::memory_order_acquire);
      if (g == seen) {
        const auto limit =
            std::chrono::steady_clock::now() + std::chrono::microseconds(left ? 0 : spinMicros.load());
        for (uint32_t i = 1; (g = generation_.load(std::memory_order_acquire)) == seen; i++) {
          if ((i & 63) == 0 && std::chrono::steady_clock::now() >= limit) {
            std::unique_lock<std::mutex> lock(mutex_);
            sleepers_.fetch_add(1, std::memory_order_seq_cst);
            wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
            sleepers_.fetch_sub(1, std::memory_order_relaxed);
          } else {
            relax();
          }
        }
      }
      seen = g;
      // the loop's fields, published before the generation moved; a loop that is already over fails every claim
      const uint64_t gen = state_.load(std::memory_order_acquire) >> 32;
      void (*body)(void*, int64_t) = body_.load(std::memory_order_relaxed);
      void* ctx = ctx_.load(std::memory_order_relaxed);
      const int64_t tasks = tasks_.load(std::memory_order_relaxed);
      const int active = active_.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (loop_.load(std::memory_order_relaxed) != gen) continue;
      left = id >= active;
      if (left) continue;
      int64_t mine = 0;
      for (int64_t t; (t = claim(gen, tasks)) >= 0; mine++) body(ctx, t);
      if (mine) done_.fetch_add(mine, std::memory_order_acq_rel);
    }
  }

  int workers_ = 0;  // started so far (ids 1 … workers_); the calling thread is 0
  std::atomic<bool> busy_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  // the loop's fields: written by the calling thread before `state_` and `generation_` move, read by workers after
  std::atomic<uint64_t> loop_{0};
  std::atomic<void (*)(void*, int64_t)> body_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> tasks_{0};
  std::atomic<int> active_{0};
};

Pool& pool() {
  // never destroyed: its workers (detached in effect) end with the process
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

void poolRun(int threads, int64_t tasks, void (*body)(void*, int64_t), void* ctx) {
  Pool& p = pool();
  if (threads <= 1 || tasks <= 1 || tasks >= (int64_t(1) << 31) || !p.tryAcquire()) {
    for (int64_t t = 0; t < tasks; t++) body(ctx, t);
    return;
  }
  // released however `run` ends (a kernel that throws ends the process today, as it did under OpenMP)
  struct Release {
    Pool& p;
    ~Release() { p.release(); }
  } release{p};
  p.run(threads, tasks, body, ctx);
}

float* taskScratch(int64_t floats) {
  static thread_local std::vector<float> scratch;
  if (int64_t(scratch.size()) < floats) scratch.resize(size_t(floats));
  return scratch.data();
}

int64_t setDecodeSpinMicros(int64_t micros) {
  spinMicros.store(micros < 0 ? 0 : micros);
  return spinMicros.load();
}

int64_t decodeSpinMicros() { return spinMicros.load(); }

}  // namespace ynk
