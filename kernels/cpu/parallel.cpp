#include "kernels/cpu/parallel.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace llm::cpu {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// How many chunks each thread's share of a region is cut into: more balances better when one
// thread runs slower (or not at all) for a while; each chunk costs one atomic claim.
constexpr std::int64_t kChunksPerThread = 4;
// A worker that finished its chunks keeps looking for the next region this long before it
// sleeps: a decode step starts a region every few microseconds, and a sleeping worker needs tens
// of microseconds to wake. But while it spins it takes a core that the caller may need when
// another process holds the other one: measured on 2 cores beside a busy process (stages 01, 03,
// 04; scripts/bench_threads), 200 us made 2 threads 0.74-0.88x of 1, 80 us 1.05-1.10x, while
// quiet 2 threads stay 1.2-1.9x of 1 (30 us: 1.1-1.4x).
constexpr auto kWorkerSpin = std::chrono::microseconds(80);

int threads_from_environment() {
  for (const char* name : {"LLM_THREADS", "OMP_NUM_THREADS"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);  // OMP_NUM_THREADS may be a list "4,2": the first counts
    if (end != v && n >= 1) return static_cast<int>(std::min(n, 1024L));
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

thread_local bool t_in_region = false;

// One region at a time. The job's fields are written under `m` before its generation is
// published and read under `m` by a worker that joins, so a worker always sees one job whole;
// chunks are claimed by a compare-and-swap on `state` = generation << 32 | next chunk, so a worker
// that joins late (or wakes up long after) can never claim a chunk of a later region.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 0; i + 1 < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int threads() const { return threads_; }
  std::mutex& owner() { return owner_; }

  void run(std::int64_t n, std::int64_t chunk, std::int64_t n_chunks, detail::ChunkFn fn, void* ctx) {
    std::uint32_t g;
    {
      std::lock_guard<std::mutex> lk(m_);
      g = ++generation_;
      job_ = Job{fn, ctx, n, chunk, n_chunks};
      error_ = nullptr;
      failed_.store(false, std::memory_order_relaxed);
      done_.store(0, std::memory_order_relaxed);
      state_.store(static_cast<std::uint64_t>(g) << 32, std::memory_order_release);
      published_.store(g, std::memory_order_release);
      if (sleepers_ > 0) wake_.notify_all();
    }
    claim_chunks(g, job_);
    // Wait only for chunks that a worker has started; spin briefly, then give the core away so a
    // descheduled worker (or another process) can run.
    for (int spins = 0; done_.load(std::memory_order_acquire) < n_chunks; ++spins) {
      if (spins < 1000) {
        cpu_relax();
      } else {
        sched_yield();
      }
    }
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> lk(m_);
      error = error_;
      error_ = nullptr;
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  struct Job {
    detail::ChunkFn fn = nullptr;
    void* ctx = nullptr;
    std::int64_t n = 0, chunk = 0, n_chunks = 0;
  };

  void claim_chunks(std::uint32_t g, const Job& job) {
    std::uint64_t v = state_.load(std::memory_order_acquire);
    for (;;) {
      if (static_cast<std::uint32_t>(v >> 32) != g) return;
      const auto c = static_cast<std::int64_t>(v & 0xffffffffu);
      if (c >= job.n_chunks) return;
      if (!state_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      const std::int64_t begin = c * job.chunk, end = std::min(job.n, begin + job.chunk);
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          job.fn(job.ctx, begin, end);
        } catch (...) {
          std::lock_guard<std::mutex> lk(m_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true, std::memory_order_relaxed);
        }
      }
      done_.fetch_add(1, std::memory_order_acq_rel);
      v = state_.load(std::memory_order_acquire);
    }
  }

  void work() {
    t_in_region = true;  // a body that calls parallel_for runs it inline on this worker
    std::uint32_t seen = 0;
    for (;;) {
      std::uint32_t g = published_.load(std::memory_order_acquire);
      if (g == seen) {
        const auto until = std::chrono::steady_clock::now() + kWorkerSpin;
        for (int spins = 1; g == seen; ++spins) {
          cpu_relax();
          g = published_.load(std::memory_order_acquire);
          if (spins % 256 == 0) {
            if (std::chrono::steady_clock::now() > until) break;
            sched_yield();  // let whatever else wants this core run
          }
        }
      }
      Job job;
      {
        std::unique_lock<std::mutex> lk(m_);
        if (g == seen) {
          ++sleepers_;
          wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
          --sleepers_;
        }
        if (stop_) return;
        g = generation_;
        job = job_;
      }
      seen = g;
      claim_chunks(g, job);
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex owner_;  // one region at a time; a second caller runs its region inline

  std::mutex m_;
  std::condition_variable wake_;
  bool stop_ = false;
  int sleepers_ = 0;
  std::uint32_t generation_ = 0;  // under m_
  Job job_;                       // under m_
  std::exception_ptr error_;      // under m_
  std::atomic<std::uint32_t> published_{0};
  std::atomic<std::uint64_t> state_{0};
  std::atomic<std::int64_t> done_{0};
  std::atomic<bool> failed_{false};
};

// The pool lives until the process exits and is never destroyed implicitly: static destructors
// run while detached code may still use it, and a reachable pointer is not a leak.
std::mutex g_pool_mutex;
Pool* g_pool = nullptr;
std::atomic<int> g_threads{0};

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  if (g_pool == nullptr) g_pool = new Pool(thread_count());
  return *g_pool;
}

}  // namespace

int thread_count() {
  int t = g_threads.load(std::memory_order_relaxed);
  if (t == 0) {
    t = threads_from_environment();
    int expected = 0;
    if (!g_threads.compare_exchange_strong(expected, t)) t = expected;
  }
  return t;
}

void set_thread_count(int threads) {
  threads = std::max(1, threads);
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  if (g_pool != nullptr && g_pool->threads() != threads) {
    delete g_pool;
    g_pool = nullptr;
  }
  g_threads.store(threads, std::memory_order_relaxed);
}

namespace detail {

void parallel_for_impl(std::int64_t n, std::int64_t grain, ChunkFn fn, void* ctx) {
  if (t_in_region) {  // nested: the outer region already uses the threads
    fn(ctx, 0, n);
    return;
  }
  Pool& p = pool();
  std::unique_lock<std::mutex> own(p.owner(), std::try_to_lock);
  if (!own.owns_lock()) {  // another application thread holds the pool
    fn(ctx, 0, n);
    return;
  }
  const std::int64_t per_thread_share = (n + p.threads() * kChunksPerThread - 1) / (p.threads() * kChunksPerThread);
  const std::int64_t chunk = std::max(grain, per_thread_share);
  const std::int64_t n_chunks = (n + chunk - 1) / chunk;
  if (n_chunks <= 1 || n_chunks > 0xffffffffLL) {  // one chunk, or more than the claim counter holds
    fn(ctx, 0, n);
    return;
  }
  struct InRegion {
    InRegion() { t_in_region = true; }
    ~InRegion() { t_in_region = false; }
  } in_region;
  p.run(n, chunk, n_chunks, fn, ctx);
}

}  // namespace detail

}  // namespace llm::cpu
