// The sampling family: argmax_rows against std::max_element, sample_top_k_rows against
// llm::Sampler::distribution + Sampler::pick (common/sampler.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "common/sampler.h"
#include "kernels/cuda/sampling.cuh"
#include "kernels/harness/families/families.h"

namespace llm::harness {

bool check_sampling(const FamilyOptions& o) {
  bool ok = true;
  for (const int vocab : {1, 7, 1000, 49152, 128256}) {
    const int n = 9;
    std::vector<float> logits = randn(static_cast<std::size_t>(n) * vocab, o.seed * 31 + static_cast<std::uint64_t>(vocab), 3.0f);
    // Ties: row 1 repeats its maximum at a later id; row 2 is constant. Row 3 has only 3 finite
    // logits (the rest -inf, as a mask would leave them): fewer candidates than top_k.
    if (vocab > 1) {
      auto r1 = logits.begin() + vocab;
      *(r1 + vocab - 1) = *std::max_element(r1, r1 + vocab);
      std::fill(logits.begin() + 2 * vocab, logits.begin() + 3 * vocab, 0.5f);
    }
    if (vocab > 3) std::fill(logits.begin() + 3 * vocab + 3, logits.begin() + 4 * vocab, -INFINITY);
    auto dl = upload(logits);
    DeviceBuffer<int> dout(static_cast<std::size_t>(n));
    dout.poison();
    cuda::argmax_rows(dout.get(), dl.get(), n, vocab);
    const std::vector<int> got = download(dout);
    int bad = 0;
    for (int r = 0; r < n; ++r) {
      const float* row = logits.data() + static_cast<std::size_t>(r) * vocab;
      const int want = static_cast<int>(std::max_element(row, row + vocab) - row);
      if (got[static_cast<std::size_t>(r)] != want && bad++ < 10)
        std::printf("    row %d: got %d want %d\n", r, got[static_cast<std::size_t>(r)], want);
    }
    std::printf("  %-4s argmax vocab=%d\n", bad ? "FAIL" : "ok", vocab);
    ok = ok && bad == 0;

    // Sampling: many draws per row over a spread of parameters.
    std::vector<cuda::SamplingRow> rows;
    std::vector<SamplingParams> params;
    std::vector<int> row_of;
    Sampler draws(SamplingParams{1.0f, 0, 1.0f, o.seed});
    for (int r = 0; r < n; ++r)
      for (const int k : {1, 2, 40, cuda::kMaxDeviceTopK})
        for (const float top_p : {1.0f, 0.9f, 0.3f})
          for (const float temp : {0.2f, 1.0f, 1.7f}) {
            rows.push_back({temp, k, top_p, draws.next_uniform()});
            params.push_back(SamplingParams{temp, k, top_p, 0});
            row_of.push_back(r);
          }
    std::vector<float> sample_logits;
    for (const int r : row_of)
      sample_logits.insert(sample_logits.end(), logits.begin() + static_cast<long>(r) * vocab,
                           logits.begin() + static_cast<long>(r + 1) * vocab);
    auto dsl = upload(sample_logits);
    DeviceBuffer<cuda::SamplingRow> drows(rows.size());
    CUDA_CHECK(cudaMemcpy(drows.get(), rows.data(), drows.bytes(), cudaMemcpyHostToDevice));
    DeviceBuffer<int> dtok(rows.size());
    dtok.poison();
    cuda::sample_top_k_rows(dtok.get(), dsl.get(), drows.get(), static_cast<int>(rows.size()), vocab);
    const std::vector<int> tok = download(dtok);
    int wrong = 0, near_boundary = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const float* row = sample_logits.data() + i * static_cast<std::size_t>(vocab);
      const std::vector<float> p = Sampler(params[i]).distribution(row, vocab);
      const int want = Sampler::pick(p, rows[i].u);
      if (tok[i] == want) continue;
      // A draw within float rounding of a cdf boundary may legitimately land on either side.
      float cdf = 0.0f, closest = 1.0f;
      for (const float pi : p)
        if (pi > 0.0f) closest = std::min(closest, std::fabs((cdf += pi) - rows[i].u));
      if (closest < 1e-6f) {
        ++near_boundary;
        continue;
      }
      if (wrong++ < 10)
        std::printf("    draw %zu (k=%d p=%.2f T=%.1f u=%.6f): got %d want %d\n", i, rows[i].top_k, rows[i].top_p,
                    rows[i].temperature, rows[i].u, tok[i], want);
    }
    std::printf("  %-4s top-k/top-p sampling vocab=%d: %zu draws, %d at a cdf boundary\n", wrong ? "FAIL" : "ok", vocab,
                rows.size(), near_boundary);
    ok = ok && wrong == 0;
  }
  return ok;
}

void bench_sampling(const FamilyOptions& o) {
  const int vocab = 128256;
  for (const int n : {1, 16}) {
    if (o.quick && n > 1) break;
    std::vector<float> logits = randn(static_cast<std::size_t>(n) * vocab, 7, 3.0f);
    auto dl = upload(logits);
    DeviceBuffer<int> out(static_cast<std::size_t>(n));
    const std::string shape = "n=" + std::to_string(n) + " vocab=" + std::to_string(vocab);
    const double bytes = static_cast<double>(logits.size()) * 4.0;
    report(row_gbps("sampling", "argmax", shape, time_launch([&](cudaStream_t s) {
                      cuda::argmax_rows(out.get(), dl.get(), n, vocab, s);
                    }),
                    bytes));
    std::vector<cuda::SamplingRow> rows(static_cast<std::size_t>(n), cuda::SamplingRow{0.8f, 40, 0.95f, 0.5f});
    DeviceBuffer<cuda::SamplingRow> drows(rows.size());
    CUDA_CHECK(cudaMemcpy(drows.get(), rows.data(), drows.bytes(), cudaMemcpyHostToDevice));
    // GB/s counts one read of the logits: k = 40 passes make this far below the copy ceiling.
    report(row_gbps("sampling", "top_k40_top_p", shape, time_launch([&](cudaStream_t s) {
                      cuda::sample_top_k_rows(out.get(), dl.get(), drows.get(), n, vocab, s);
                    }),
                    bytes));
  }
}

}  // namespace llm::harness
