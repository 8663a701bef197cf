// The bench's QPS sweep rules (stages/bench/rate_sweep.h): requests per rate, the rate grid
// relative to capacity, and the cycled workload that scripts/bench_serving shares.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "stages/bench/rate_sweep.h"

using namespace llm;
using namespace llm::bench;

TEST_CASE("requests per rate: max(least, ceil(seconds x rate))", "[rate-sweep]") {
  CHECK(requests_at_rate(16.0, 64, 3.0) == 64);  // 48 s-worth is below the floor
  CHECK(requests_at_rate(32.0, 64, 3.0) == 96);
  CHECK(requests_at_rate(21.5, 64, 3.0) == 65);  // 64.5 rounds up
  CHECK(requests_at_rate(16.0, 1, 3.0) == 48);   // exactly 48, not 49
  CHECK(requests_at_rate(0.1, 1, 3.0) == 1);
  CHECK(requests_at_rate(500.0, 64, 0.0) == 64);  // seconds 0: the floor alone
  CHECK(requests_at_rate(60.0, 32, 3.0) == 180);
}

TEST_CASE("the rate grid: geometric from lo to past hi times the capacity, 2 significant digits", "[rate-sweep]") {
  const RateGrid g = parse_rate_grid("--qps-grid", "0.5,1.6,0.12");
  CHECK(g.lo == 0.5);
  CHECK(g.hi == 1.6);
  CHECK(g.step == 0.12);
  // 40 req/s x 0.5 x 1.12^k for k = 0..11 (1.12^10 x 0.5 = 1.553 < 1.6, so one more).
  const std::vector<double> want = {20, 22, 25, 28, 31, 35, 39, 44, 50, 55, 62, 70};
  CHECK(grid_rates(g, 40.0) == want);
  // Any capacity: ascending, starts at lo, reaches hi, neighbours 5-20% apart.
  for (double cap : {3.7, 12.0, 44.0, 97.0, 1234.0}) {
    const std::vector<double> r = grid_rates(g, cap);
    INFO("capacity " << cap);
    REQUIRE(r.size() >= 10);
    CHECK(r.front() == Approx(0.5 * cap).epsilon(0.05));
    CHECK(r.back() >= 1.6 * cap * 0.95);
    for (std::size_t i = 1; i < r.size(); ++i) {
      CHECK(r[i] / r[i - 1] > 1.04);
      CHECK(r[i] / r[i - 1] < 1.21);
    }
  }
  CHECK(grid_rates(parse_rate_grid("f", "1,1,0.1"), 10.0) == std::vector<double>{10});
  CHECK_THROWS_AS(grid_rates(g, 0.0), Error);
}

TEST_CASE("the rate grid: bad specifications name the flag and the value", "[rate-sweep]") {
  for (const char* bad : {"0.5,1.6", "0.5,1.6,0.12x", "0,1,0.1", "2,1,0.1", "0.5,1.6,0.001", "a,b,c", "0.5,101,0.1",
                          "0.001,100,0.01"}) {
    INFO(bad);
    try {
      (void)parse_rate_grid("--qps-grid", bad);
      FAIL("accepted " << bad);
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::Contains("--qps-grid '" + std::string(bad) + "'"));
    }
  }
}

TEST_CASE("merging explicit rates into a grid: sorted, no repeats", "[rate-sweep]") {
  CHECK(merge_rates({20, 25, 31}, {8, 25}) == std::vector<double>{8, 20, 25, 31});
  CHECK(merge_rates({}, {3, 1}) == std::vector<double>{1, 3});
}

TEST_CASE("the cycled workload: pass k drops the first k words and renames the request", "[rate-sweep]") {
  std::vector<WorkloadItem> base(3);
  base[0] = {"a", "one two three four", 5, 0.25, 1};
  base[1] = {"b", "single", 6, 0.5, 2};
  base[2] = {"c", "x  y z", 7, 0.75, 3};  // two spaces: an empty word, as Python's split(" ")
  const auto out = cycled_workload(base, 10);
  REQUIRE(out.size() == 10);
  const std::vector<std::string> ids = {"a", "b", "c", "a-pass1", "b-pass1", "c-pass1",
                                        "a-pass2", "b-pass2", "c-pass2", "a-pass3"};
  const std::vector<std::string> prompts = {"one two three four", "single", "x  y z", "two three four", "single",
                                            " y z", "three four", "single", "y z", "four"};
  for (std::size_t i = 0; i < out.size(); ++i) {
    INFO("request " << i);
    CHECK(out[i].id == ids[i]);
    CHECK(out[i].prompt == prompts[i]);
    CHECK(out[i].max_new_tokens == base[i % 3].max_new_tokens);
  }
  // Far past the words: the last word stays.
  CHECK(cycled_workload(base, 31).back().prompt == "four");
  CHECK(cycled_workload(base, 31).back().id == "a-pass10");
  // Fewer than the workload holds: its first n, unchanged.
  const auto two = cycled_workload(base, 2);
  REQUIRE(two.size() == 2);
  CHECK(two[1].id == "b");
  CHECK_THROWS_AS(cycled_workload({}, 4), Error);
}
