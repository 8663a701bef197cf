// attention_prefill.cu (harness family): checks every prefill attention version
// (kernels/cuda/attention_prefill/) against the CPU definition, llm::cpu::attention_reference, and
// times them at long-context shapes.
//
//   build/kernels/kernel_harness check attention_prefill [--version N] [--quick] [--seed S]
//   build/kernels/kernel_harness bench attention_prefill [--version N] [--quick] [--json FILE]
//
// check: real shapes (a Llama-3-8B layer: head_dim 128, 32 query / 8 kv heads; SmolLM: head_dim
// 64, 9 / 3; the project's tiny-target model: head_dim 32, 8 / 2) and awkward ones (one token, a
// 13-token continuation of a 64-token prefix, lengths that are not a multiple of any tile, batch
// 3, plain multi-head). Every version is compared with the definition (not with its own twin) at
// the fp16 tolerance.
// bench: 16k tokens per launch (batch x sequence length) from 1k to 16k long, causal and not.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/half.h"
#include "kernels/cuda/attention_prefill/attention_prefill.cuh"
#include "kernels/harness/families/families.h"

namespace llm::harness {

namespace {

constexpr const char* kFamily = "attention_prefill";
/// 01 keeps the whole fp32 score matrix; above this it is skipped in bench.
constexpr std::size_t kMaxScratchBytes = std::size_t{8} << 30;

struct Case {
  const char* what;
  cpu::AttentionShape s;
};

cpu::AttentionShape shape(int batch, int q_len, int kv_len, int n_heads, int n_kv_heads, int head_dim, bool causal) {
  cpu::AttentionShape s;
  s.batch = batch;
  s.q_len = q_len;
  s.kv_len = kv_len;
  s.n_heads = n_heads;
  s.n_kv_heads = n_kv_heads;
  s.head_dim = head_dim;
  s.causal = causal;
  return s;
}

std::string describe(const cpu::AttentionShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "b%d q%d kv%d h%d/%d d%d %s", s.batch, s.q_len, s.kv_len, s.n_heads, s.n_kv_heads,
                s.head_dim, s.causal ? "causal" : "full");
  return buf;
}

cuda::PrefillAttentionArgs make_args(const cpu::AttentionShape& s, const __half* q, const __half* k, const __half* v,
                                     __half* out) {
  cuda::PrefillAttentionArgs a;
  a.q = q, a.k = k, a.v = v, a.out = out;
  a.batch = s.batch, a.q_len = s.q_len, a.kv_len = s.kv_len;
  a.n_heads = s.n_heads, a.n_kv_heads = s.n_kv_heads, a.head_dim = s.head_dim;
  a.causal = s.causal;
  return a;
}

/// splitmix64: spreads the base seed and the shape into an unrelated seed per case.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::uint64_t seed_for(std::uint64_t base, const cpu::AttentionShape& s) {
  std::uint64_t h = mix(base);
  for (int f : {s.batch, s.q_len, s.kv_len, s.n_heads, s.n_kv_heads, s.head_dim, s.causal ? 1 : 0}) {
    h = mix(h ^ static_cast<std::uint64_t>(f));
  }
  return h;
}

bool selected(const FamilyOptions& o, int number) {
  return o.version == 0 || o.version == number;
}

bool known_version(const FamilyOptions& o) {
  if (o.version == 0) return true;
  for (const auto& ver : cuda::kPrefillAttentionVersions) {
    if (ver.number == o.version) return true;
  }
  std::printf("  FAIL %s has no version %d\n", kFamily, o.version);
  return false;
}

std::vector<Case> check_cases(bool quick) {
  if (quick) {
    return {
        {"Llama-like, GQA 4:1", shape(1, 128, 128, 8, 2, 128, true)},
        {"SmolLM-like, length 100", shape(2, 100, 100, 9, 3, 64, false)},
        {"13 new tokens after 64 cached, MHA", shape(1, 13, 77, 4, 4, 128, true)},
        {"one token", shape(1, 1, 1, 2, 1, 64, true)},
        {"tiny-target layer, length 100", shape(1, 100, 100, 8, 2, 32, false)},
        {"tiny-target, 13 new tokens after 64 cached", shape(1, 13, 77, 8, 2, 32, true)},
        {"SmolLM-like chunk, 65 new tokens after 135", shape(1, 65, 200, 9, 3, 64, true)},
    };
  }
  return {
      {"Llama-3-8B layer", shape(1, 512, 512, 32, 8, 128, true)},
      {"Llama-3-8B layer", shape(1, 512, 512, 32, 8, 128, false)},
      {"SmolLM layer", shape(2, 256, 256, 9, 3, 64, true)},
      {"SmolLM layer, length 200", shape(1, 200, 200, 9, 3, 64, false)},
      {"one token", shape(1, 1, 1, 4, 2, 64, true)},
      {"one query over 100 keys", shape(2, 1, 100, 8, 2, 128, true)},
      {"13 new tokens after 64 cached", shape(1, 13, 77, 8, 2, 128, true)},
      {"13 new tokens after 64 cached", shape(1, 13, 77, 9, 3, 64, false)},
      {"length 100, MHA", shape(1, 100, 100, 4, 4, 64, true)},
      {"length 129, batch 3", shape(3, 129, 129, 4, 2, 128, true)},
      {"length 129, MHA", shape(2, 129, 129, 6, 6, 64, false)},
      {"65 new tokens after 135, MQA", shape(1, 65, 200, 4, 1, 128, true)},
      // The project's default model, tiny-target (head_dim 32, 8 / 2 heads, context 256).
      {"tiny-target layer, full context", shape(1, 256, 256, 8, 2, 32, true)},
      {"tiny-target, one token", shape(1, 1, 1, 8, 2, 32, true)},
      {"tiny-target, one query over 100 keys", shape(2, 1, 100, 8, 2, 32, true)},
      {"tiny-target, 13 new tokens after 64 cached", shape(1, 13, 77, 8, 2, 32, true)},
      {"tiny-target, 13 new tokens after 64 cached", shape(1, 13, 77, 8, 2, 32, false)},
      {"tiny-target, length 100", shape(1, 100, 100, 8, 2, 32, true)},
      {"tiny-target, length 100", shape(2, 100, 100, 8, 2, 32, false)},
      {"tiny-target, length 129, batch 3", shape(3, 129, 129, 8, 2, 32, true)},
      {"tiny-target, length 129, MHA", shape(1, 129, 129, 4, 4, 32, false)},
  };
}

/// Runs one case for every selected version; returns the number of failures.
int check_case(const Case& c, const FamilyOptions& o) {
  const cpu::AttentionShape& s = c.s;
  const std::uint64_t seed = seed_for(o.seed, s);
  std::vector<float> q = randn(s.q_elems(), seed);
  std::vector<float> k = randn(s.kv_elems(), mix(seed + 1));
  std::vector<float> v = randn(s.kv_elems(), mix(seed + 2));
  cpu::round_to_half(q);  // the kernels read fp16: give the reference the same values
  cpu::round_to_half(k);
  cpu::round_to_half(v);
  std::vector<float> want(s.q_elems());
  cpu::attention_reference(want.data(), q.data(), k.data(), v.data(), s);

  const DeviceBuffer<__half> dq = upload_half(q), dk = upload_half(k), dv = upload_half(v);
  DeviceBuffer<__half> dout(s.q_elems());
  int failures = 0;
  for (const auto& ver : cuda::kPrefillAttentionVersions) {
    if (!selected(o, ver.number)) continue;
    const std::string what = std::string(ver.name) + " " + describe(s) + " (" + c.what + ")";
    try {
      cuda::PrefillAttentionArgs a = make_args(s, dq.get(), dk.get(), dv.get(), dout.get());
      DeviceBuffer<unsigned char> scratch(cuda::prefill_scratch_bytes(ver.number, a));
      a.scratch = scratch.get();
      dout.poison();
      ver.run(a, nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      CUDA_CHECK(cudaGetLastError());
      if (!check_close(what, download(dout), want, static_cast<std::size_t>(s.head_dim), kTolFp16)) ++failures;
    } catch (const std::exception& e) {
      std::printf("  FAIL %-60s %s\n", what.c_str(), e.what());
      ++failures;
    }
  }
  return failures;
}

/// validate() must refuse impossible args by name. Host-only: no kernel runs.
int check_validation() {
  alignas(16) static __half dummy[8];  // any non-null aligned pointer will do: nothing is launched
  const cpu::AttentionShape ok = shape(1, 4, 8, 4, 2, 64, true);
  struct Bad {
    const char* field;
    void (*spoil)(cuda::PrefillAttentionArgs&);
  };
  const Bad bad[] = {
      {"head_dim", [](cuda::PrefillAttentionArgs& a) { a.head_dim = 96; }},
      {"head_dim", [](cuda::PrefillAttentionArgs& a) { a.head_dim = 16; }},
      {"n_kv_heads", [](cuda::PrefillAttentionArgs& a) { a.n_kv_heads = 3; }},
      {"q_len", [](cuda::PrefillAttentionArgs& a) { a.q_len = 9; }},
      {"batch", [](cuda::PrefillAttentionArgs& a) { a.batch = 0; }},
      {"kv_len", [](cuda::PrefillAttentionArgs& a) { a.kv_len = -1; }},
      {"k", [](cuda::PrefillAttentionArgs& a) { a.k = nullptr; }},
  };
  int failures = 0;
  try {
    cuda::validate(make_args(ok, dummy, dummy, dummy, dummy));
  } catch (const std::exception& e) {
    std::printf("  FAIL validate refused good args: %s\n", e.what());
    ++failures;
  }
  for (const Bad& b : bad) {
    cuda::PrefillAttentionArgs a = make_args(ok, dummy, dummy, dummy, dummy);
    b.spoil(a);
    try {
      cuda::validate(a);
      std::printf("  FAIL validate accepted a bad %s\n", b.field);
      ++failures;
    } catch (const std::invalid_argument& e) {
      if (std::string(e.what()).find(b.field) == std::string::npos) {
        std::printf("  FAIL validate's message for a bad %s does not name it: %s\n", b.field, e.what());
        ++failures;
      }
    }
  }
  std::printf("  %-4s validate refuses impossible args by name\n", failures == 0 ? "ok" : "FAIL");
  return failures;
}

}  // namespace

bool check_attention_prefill(const FamilyOptions& o) {
  if (!known_version(o)) return false;
  int failures = check_validation();
  for (const Case& c : check_cases(o.quick)) failures += check_case(c, o);
  if (failures > 0) std::printf("  %s: %d check(s) failed\n", kFamily, failures);
  return failures == 0;
}

void bench_attention_prefill(const FamilyOptions& o) {
  if (!known_version(o)) return;
  // A Llama-3-8B layer; every shape holds 16k tokens (batch x length), so one set of buffers
  // serves them all and the work per launch grows with the length.
  constexpr int kTokens = 16384, kHeads = 32, kKvHeads = 8, kHeadDim = 128;
  const std::vector<int> lengths = o.quick ? std::vector<int>{1024} : std::vector<int>{1024, 2048, 4096, 8192, 16384};
  const cpu::AttentionShape all = shape(1, kTokens, kTokens, kHeads, kKvHeads, kHeadDim, true);
  const DeviceBuffer<__half> dq = upload_half(randn(all.q_elems(), mix(o.seed)));
  const DeviceBuffer<__half> dk = upload_half(randn(all.kv_elems(), mix(o.seed + 1)));
  const DeviceBuffer<__half> dv = upload_half(randn(all.kv_elems(), mix(o.seed + 2)));
  DeviceBuffer<__half> dout(all.q_elems());

  int failures = 0;
  for (int len : lengths) {
    for (bool causal : {true, false}) {
      const cpu::AttentionShape s = shape(kTokens / len, len, len, kHeads, kKvHeads, kHeadDim, causal);
      for (const auto& ver : cuda::kPrefillAttentionVersions) {
        if (!selected(o, ver.number)) continue;
        try {
          cuda::PrefillAttentionArgs a = make_args(s, dq.get(), dk.get(), dv.get(), dout.get());
          const std::size_t scratch_bytes = cuda::prefill_scratch_bytes(ver.number, a);
          if (scratch_bytes > kMaxScratchBytes) {
            std::printf("  skip %s at %s: its score matrix needs %.0f GiB (limit %.0f GiB)\n", ver.name,
                        describe(s).c_str(), static_cast<double>(scratch_bytes) / (1 << 30),
                        static_cast<double>(kMaxScratchBytes) / (1 << 30));
            continue;
          }
          DeviceBuffer<unsigned char> scratch(scratch_bytes);
          a.scratch = scratch.get();
          // 01 takes up to a few hundred ms per launch at the long shapes: fewer repeats.
          const int repeats = ver.number == 1 ? 10 : 50, warmup = ver.number == 1 ? 2 : 5;
          const Timing t = time_launch([&](cudaStream_t stream) { ver.run(a, stream); }, repeats, warmup);
          report(row_tflops(kFamily, ver.name, describe(s), t, s.flops()));
        } catch (const std::exception& e) {
          std::printf("  FAIL %s %s: %s\n", ver.name, describe(s).c_str(), e.what());
          ++failures;
        }
      }
    }
  }
  if (failures > 0) std::printf("  %s bench: %d shape(s) failed\n", kFamily, failures);
}

}  // namespace llm::harness
