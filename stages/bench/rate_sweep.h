// rate_sweep.h: the QPS sweep's arrival rates and the requests each rate sends.
//
// QPS at the SLO is the highest Poisson rate tried whose p90 TTFT and TPOT meet the SLO. The
// figure binds only when (1) the rates reach past the engine's capacity, (2) they are close
// enough together near it that two engines can land on different rates, and (3) each rate sends
// arrivals for long enough that a queue builds above capacity: with a few dozen requests a burst
// is over before one forms, and any rate "meets" the SLO. This file owns those three rules;
// scripts/bench_serving takes its per-rate workloads from here too (bench --cycled-workload).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/workload.h"

namespace llm::bench {

/// Requests one sweep run at `rate` (req/s) sends: at least `least`, and at least `seconds`
/// of arrivals, i.e. max(least, ceil(seconds x rate)). seconds = 0: always `least`.
int requests_at_rate(double rate, int least, double seconds);

/// A geometric grid of rates relative to a capacity (req/s): the fractions lo, lo x (1 + step),
/// lo x (1 + step)^2, ... up to the first one >= hi, times the capacity.
struct RateGrid {
  double lo = 0.0;    ///< lowest fraction of the capacity, > 0
  double hi = 0.0;    ///< the grid reaches at least this fraction, >= lo
  double step = 0.0;  ///< relative step between neighbours, e.g. 0.12 for 12%
};

/// Parses "LO,HI,STEP" (e.g. "0.5,1.6,0.12"); `flag` names the option in the llm::Error thrown
/// for anything else (0 < LO <= HI <= 100, 0.01 <= STEP <= 10, at most 200 rates).
RateGrid parse_rate_grid(const std::string& flag, const std::string& text);

/// The grid's rates for `capacity_rps` (> 0), each rounded to 2 significant digits (31, 35,
/// 39 req/s: readable, and still distinct at steps of 10% or more), ascending, without repeats.
std::vector<double> grid_rates(const RateGrid& g, double capacity_rps);

/// `rates` and `more` merged: ascending, without repeats.
std::vector<double> merge_rates(std::vector<double> rates, const std::vector<double>& more);

/// The first n requests of `items` cycled: pass 0 is `items` itself; pass k >= 1 repeats it with
/// the first k words of each prompt (split at single spaces) left out, keeping at least the last
/// word, and id "<id>-pass<k>", so that no prompt of a later pass shares its first KV block with
/// an earlier one and the prefix cache finds nothing the first pass would not have given it.
/// arrival_s is kept as given (the sweep draws its own arrivals). `items` must not be empty.
std::vector<WorkloadItem> cycled_workload(const std::vector<WorkloadItem>& items, std::size_t n);

}  // namespace llm::bench
