// kernels/cpu/parallel.h: every item exactly once, at any thread count and grain; exceptions from
// any thread reach the caller; nested regions and a second application thread run inline.
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/parallel.h"

namespace {

using llm::cpu::parallel_for;

// Restores the thread count a test changed.
struct ThreadCount {
  explicit ThreadCount(int t) : saved(llm::cpu::thread_count()) { llm::cpu::set_thread_count(t); }
  ~ThreadCount() { llm::cpu::set_thread_count(saved); }
  int saved;
};

}  // namespace

TEST_CASE("parallel_for covers every item exactly once", "[parallel]") {
  for (int threads : {1, 2, 3, 8}) {
    ThreadCount tc(threads);
    for (std::int64_t n : {0, 1, 2, 7, 64, 1000, 100003}) {
      for (std::int64_t grain : {1, 3, 64, 5000}) {
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        std::atomic<std::int64_t> ranges{0};
        bool bad_range = false;
        parallel_for(n, grain, [&](std::int64_t b, std::int64_t e) {
          if (b < 0 || e > n || b >= e) bad_range = true;
          // Every range but the last holds at least `grain` items.
          if (e < n && e - b < grain) bad_range = true;
          for (std::int64_t i = b; i < e; ++i) hits[static_cast<std::size_t>(i)].fetch_add(1);
          ranges.fetch_add(1);
        });
        INFO("threads " << threads << " n " << n << " grain " << grain);
        CHECK_FALSE(bad_range);
        std::int64_t wrong = 0, first = -1;
        for (std::int64_t i = 0; i < n; ++i) {
          if (hits[static_cast<std::size_t>(i)].load() != 1) {
            if (first < 0) first = i;
            ++wrong;
          }
        }
        INFO("first item not run exactly once: " << first);
        CHECK(wrong == 0);
        if (n > 0) CHECK(ranges.load() >= 1);
      }
    }
  }
}

TEST_CASE("parallel_for uses more than one thread when there is work to share", "[parallel]") {
  ThreadCount tc(2);
  // Chunks that take a while, so the worker certainly joins: up to 1 s in all, usually milliseconds.
  std::atomic<int> distinct{0};
  for (int attempt = 0; attempt < 50 && distinct.load() < 2; ++attempt) {
    std::vector<std::thread::id> ids(64);
    parallel_for(64, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        ids[static_cast<std::size_t>(i)] = std::this_thread::get_id();
        std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
    });
    std::vector<std::thread::id> seen;
    for (auto id : ids)
      if (std::find(seen.begin(), seen.end(), id) == seen.end()) seen.push_back(id);
    distinct = static_cast<int>(seen.size());
  }
  CHECK(distinct.load() == 2);
}

TEST_CASE("an exception on any thread reaches the caller after every chunk has finished", "[parallel]") {
  ThreadCount tc(2);
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> finished{0};
    try {
      parallel_for(256, 1, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) {
          if (i == 200) throw llm::NotImplemented("padding-mask");
        }
        finished.fetch_add(1);
      });
      FAIL("no exception");
    } catch (const llm::NotImplemented& e) {
      CHECK(e.name() == "padding-mask");
    }
    // The pool is usable again at once.
    std::atomic<std::int64_t> sum{0};
    parallel_for(1000, 10, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) sum.fetch_add(i);
    });
    CHECK(sum.load() == 999 * 1000 / 2);
  }
  CHECK_THROWS_AS(parallel_for(10, 1, [](std::int64_t, std::int64_t) { throw llm::Error("bad"); }), llm::Error);
}

TEST_CASE("nested regions and a second application thread run inline and stay correct", "[parallel]") {
  ThreadCount tc(2);
  std::atomic<std::int64_t> total{0};
  auto region = [&] {
    parallel_for(32, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        parallel_for(100, 1, [&](std::int64_t bb, std::int64_t ee) { total.fetch_add(ee - bb); });
      }
    });
  };
  std::thread other([&] {
    for (int r = 0; r < 50; ++r) region();
  });
  for (int r = 0; r < 50; ++r) region();
  other.join();
  CHECK(total.load() == 2 * 50 * 32 * 100);
}

TEST_CASE("grain_for gives chunks of at least the minimum work", "[parallel]") {
  CHECK(llm::cpu::grain_for(1, 100) == 100);
  CHECK(llm::cpu::grain_for(30, 100) == 4);
  CHECK(llm::cpu::grain_for(1000, 100) == 1);
  CHECK(llm::cpu::grain_for(0, 100) == 100);
}
