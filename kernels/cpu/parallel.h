// parallel.h: the CPU threads every kernel and stage shares, and the one way to use them.
//
//   cpu::parallel_for(n, grain, [&](std::int64_t begin, std::int64_t end) { ... items begin .. end-1 ... });
//
// Why not OpenMP's `parallel for`? Its team ends every region at a barrier that waits for every
// thread, so one thread that the OS has descheduled (another process holds its core; a student's
// laptop always has one) stalls the whole region for a scheduler time slice, milliseconds, and a
// decode step runs hundreds of regions. Here the calling thread takes part and hands out chunks
// from a counter: a worker that is not running simply claims no chunk, and the caller only ever
// waits for chunks that a running worker has already started. Regions whose work is too small to
// share run on the calling thread alone (the caller says how small through `grain`), so adding a
// thread never makes a step slower than running on one.
//
// Nested calls (a body that calls parallel_for) and calls from a second application thread while
// a region is running run inline on their caller. An exception thrown by the body on any thread is
// caught there and rethrown on the calling thread once every started chunk has finished.
#pragma once

#include <cstdint>
#include <type_traits>

namespace llm::cpu {

/// Threads that parallel_for uses, the calling thread included: $LLM_THREADS, else
/// $OMP_NUM_THREADS (so the usual knob keeps working), else the CPUs this process may run on.
int thread_count();

/// Sets the thread count (>= 1) for later regions; for tests and benchmarks that compare counts.
/// Must not be called while a region is running.
void set_thread_count(int threads);

/// The number of items one chunk should hold so that a chunk does at least `min_work` units of
/// work when one item costs `work_per_item` units (>= 1 item; both > 0).
inline std::int64_t grain_for(std::int64_t work_per_item, std::int64_t min_work) {
  if (work_per_item <= 0) return min_work > 0 ? min_work : 1;
  const std::int64_t g = (min_work + work_per_item - 1) / work_per_item;
  return g > 0 ? g : 1;
}

/// Work (multiply-adds or comparable inner-loop iterations) below which a chunk is not worth
/// handing to another thread: about 5-10 microseconds on one core.
inline constexpr std::int64_t kMinChunkWork = std::int64_t{1} << 15;

namespace detail {
using ChunkFn = void (*)(void* ctx, std::int64_t begin, std::int64_t end);
void parallel_for_impl(std::int64_t n, std::int64_t grain, ChunkFn fn, void* ctx);
}  // namespace detail

/// Runs body(begin, end) over disjoint ranges covering [0, n), each of at least `grain` items
/// (except possibly the last), on the calling thread and the pool's workers. Returns when every
/// item is done. n <= grain (or one thread) runs body(0, n) inline.
template <class Body>
void parallel_for(std::int64_t n, std::int64_t grain, Body&& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain || thread_count() == 1) {
    body(std::int64_t{0}, n);
    return;
  }
  using B = std::remove_reference_t<Body>;
  detail::parallel_for_impl(
      n, grain, [](void* ctx, std::int64_t b, std::int64_t e) { (*static_cast<B*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

}  // namespace llm::cpu
