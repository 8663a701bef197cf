// The pointwise family: RMSNorm (plain and fused with the residual add and the fp16 cast),
// RoPE fused with the KV-cache write, SwiGLU fused with the cast, the embedding lookup. Each
// against the fp32 CPU twins of kernels/cpu/ops.h.
#include <cstdio>
#include <numeric>
#include <random>
#include <string>

#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/embedding.cuh"
#include "kernels/cuda/rmsnorm.cuh"
#include "kernels/cuda/rope_kv.cuh"
#include "kernels/cuda/swiglu.cuh"
#include "kernels/harness/families/families.h"

namespace llm::harness {

namespace {

std::string nd(int n, int dim) { return "n=" + std::to_string(n) + " dim=" + std::to_string(dim); }

bool check_rmsnorm(const FamilyOptions& o) {
  bool ok = true;
  for (auto [n, dim] : {std::pair{1, 576}, {33, 4096}, {7, 37}, {128, 1}, {3, 8192}}) {
    const std::uint64_t seed = o.seed * 100 + static_cast<std::uint64_t>(n * 13 + dim);
    const std::vector<float> x = randn(static_cast<std::size_t>(n) * dim, seed, 2.0f);
    const std::vector<float> w = randn(static_cast<std::size_t>(dim), seed + 1);
    const std::vector<float> delta = randn(x.size(), seed + 2);
    std::vector<float> want(x.size());
    cpu::rmsnorm(want.data(), x.data(), w.data(), n, dim, 1e-5f);
    auto dx = upload(x), dw = upload(w), dd = upload(delta);
    DeviceBuffer<float> dy(x.size());
    dy.poison();
    cuda::rmsnorm(dy.get(), dx.get(), dw.get(), n, dim, 1e-5f);
    ok = check_close("rmsnorm fp32 " + nd(n, dim), download(dy), want, static_cast<std::size_t>(dim), kTolFp32) && ok;

    // Fused: x += delta, y = rmsnorm(x) in fp16. Both outputs are checked.
    std::vector<float> sum(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + delta[i];
    cpu::rmsnorm(want.data(), sum.data(), w.data(), n, dim, 1e-5f);
    DeviceBuffer<__half> dh(x.size());
    dh.poison();
    cuda::add_rmsnorm_to_half(dh.get(), dx.get(), dd.get(), dw.get(), n, dim, 1e-5f);
    ok = check_close("add_rmsnorm_to_half (y, fp16) " + nd(n, dim), download(dh), want, static_cast<std::size_t>(dim),
                     kTolFp16) &&
         ok;
    ok = check_close("add_rmsnorm_to_half (x += delta) " + nd(n, dim), download(dx), sum, static_cast<std::size_t>(dim),
                     kTolFp32) &&
         ok;
  }
  return ok;
}

bool check_rope_store_kv(const FamilyOptions& o) {
  bool ok = true;
  struct Shape {
    int n, heads, kv_heads, head_dim, num_slots;
  };
  for (const Shape s : {Shape{1, 32, 8, 128, 64}, Shape{13, 9, 3, 64, 40}, Shape{5, 4, 4, 2, 9}}) {
    const std::uint64_t seed = o.seed * 200 + static_cast<std::uint64_t>(s.n * 31 + s.head_dim);
    const int row = (s.heads + 2 * s.kv_heads) * s.head_dim;
    const std::vector<float> qkv = randn(static_cast<std::size_t>(s.n) * row, seed);
    std::mt19937 rng(static_cast<std::uint32_t>(seed));
    std::vector<int> positions(static_cast<std::size_t>(s.n)), slots(static_cast<std::size_t>(s.num_slots));
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), rng);  // distinct, scattered slots
    slots.resize(static_cast<std::size_t>(s.n));
    for (auto& p : positions) p = static_cast<int>(rng() % 40000);  // long contexts too
    // The twin: cpu::rope on q and k of each token, scattered to the token's slot.
    const std::size_t kv_row = static_cast<std::size_t>(s.kv_heads) * s.head_dim;
    std::vector<float> want_q(static_cast<std::size_t>(s.n) * s.heads * s.head_dim);
    auto want_k = randn(static_cast<std::size_t>(s.num_slots) * kv_row, seed + 1);  // untouched slots keep these
    auto want_v = randn(want_k.size(), seed + 2);
    cpu::round_to_half(want_k);
    cpu::round_to_half(want_v);
    auto dk = upload_half(want_k), dv = upload_half(want_v);
    for (int t = 0; t < s.n; ++t) {
      std::vector<float> r(qkv.begin() + static_cast<long>(t) * row, qkv.begin() + static_cast<long>(t + 1) * row);
      cpu::rope(r.data(), s.heads + s.kv_heads, s.head_dim, positions[static_cast<std::size_t>(t)], 10000.0f);
      std::copy(r.begin(), r.begin() + static_cast<long>(s.heads) * s.head_dim,
                want_q.begin() + static_cast<long>(t) * s.heads * s.head_dim);
      const std::size_t slot = static_cast<std::size_t>(slots[static_cast<std::size_t>(t)]);
      std::copy(r.begin() + static_cast<long>(s.heads) * s.head_dim, r.begin() + static_cast<long>(s.heads + s.kv_heads) * s.head_dim,
                want_k.begin() + static_cast<long>(slot * kv_row));
      std::copy(r.begin() + static_cast<long>(s.heads + s.kv_heads) * s.head_dim, r.end(),
                want_v.begin() + static_cast<long>(slot * kv_row));
    }
    auto dqkv = upload(qkv);
    auto dpos = upload(positions), dslots = upload(slots);
    DeviceBuffer<__half> dq(want_q.size());
    dq.poison();
    cuda::RopeStoreKvArgs a;
    a.qkv = dqkv.get();
    a.positions = dpos.get();
    a.slots = dslots.get();
    a.q_out = dq.get();
    a.k_cache = dk.get();
    a.v_cache = dv.get();
    a.n = s.n;
    a.n_heads = s.heads;
    a.n_kv_heads = s.kv_heads;
    a.head_dim = s.head_dim;
    cuda::rope_store_kv(a);
    const std::string what = "n=" + std::to_string(s.n) + " heads=" + std::to_string(s.heads) + "/" +
                             std::to_string(s.kv_heads) + " head_dim=" + std::to_string(s.head_dim);
    const auto cols = static_cast<std::size_t>(s.head_dim);
    ok = check_close("rope_store_kv q " + what, download(dq), want_q, cols, kTolFp16) && ok;
    ok = check_close("rope_store_kv k cache " + what, download(dk), want_k, cols, kTolFp16) && ok;
    ok = check_close("rope_store_kv v cache " + what, download(dv), want_v, cols, kTolFp16) && ok;
  }
  return ok;
}

bool check_swiglu_embedding(const FamilyOptions& o) {
  bool ok = true;
  for (auto [n, ff] : {std::pair{1, 1536}, {9, 14336}, {5, 3}}) {
    const std::vector<float> gu = randn(static_cast<std::size_t>(n) * 2 * ff, o.seed * 300 + static_cast<std::uint64_t>(ff), 3.0f);
    std::vector<float> want(static_cast<std::size_t>(n) * ff);
    for (int r = 0; r < n; ++r)
      cpu::swiglu(want.data() + static_cast<long>(r) * ff, gu.data() + static_cast<long>(r) * 2 * ff,
                  gu.data() + static_cast<long>(r) * 2 * ff + ff, static_cast<std::size_t>(ff));
    auto dgu = upload(gu);
    DeviceBuffer<__half> dout(want.size());
    dout.poison();
    cuda::swiglu_to_half(dout.get(), dgu.get(), n, ff);
    ok = check_close("swiglu_to_half n=" + std::to_string(n) + " ff=" + std::to_string(ff), download(dout), want,
                     static_cast<std::size_t>(ff), kTolFp16) &&
         ok;
  }
  for (auto [vocab, dim] : {std::pair{49152, 576}, {100, 4096}, {7, 3}}) {
    std::vector<float> table = randn(static_cast<std::size_t>(vocab) * dim, o.seed * 400 + static_cast<std::uint64_t>(dim));
    cpu::round_to_half(table);
    const std::vector<int> tokens = {0, vocab - 1, vocab / 2, 0, 3 % vocab};
    std::vector<float> want;
    for (const int t : tokens)
      want.insert(want.end(), table.begin() + static_cast<long>(t) * dim, table.begin() + static_cast<long>(t + 1) * dim);
    auto dt = upload_half(table);
    auto dtok = upload(tokens);
    DeviceBuffer<float> dx(want.size());
    dx.poison();
    cuda::embedding(dx.get(), dt.get(), dtok.get(), static_cast<int>(tokens.size()), dim);
    ok = check_close("embedding vocab=" + std::to_string(vocab) + " dim=" + std::to_string(dim), download(dx), want,
                     static_cast<std::size_t>(dim), 0.0) &&
         ok;
  }
  return ok;
}

}  // namespace

bool check_pointwise(const FamilyOptions& o) {
  const bool a = check_rmsnorm(o);
  const bool b = check_rope_store_kv(o);
  const bool c = check_swiglu_embedding(o);
  return a && b && c;
}

void bench_pointwise(const FamilyOptions& o) {
  // Decode-sized rows (memory- and launch-bound): bytes moved per launch over time.
  for (const int n : {1, 16, 2048}) {
    if (o.quick && n != 16) continue;
    const int dim = 4096, ff = 14336;
    DeviceBuffer<float> x(static_cast<std::size_t>(n) * dim), d(x.size()), w(static_cast<std::size_t>(dim));
    DeviceBuffer<float> gu(static_cast<std::size_t>(n) * 2 * ff);
    DeviceBuffer<__half> h(x.size()), hff(static_cast<std::size_t>(n) * ff);
    for (auto* b : {&x, &d, &w, &gu}) CUDA_CHECK(cudaMemset(b->get(), 0x3C, b->bytes()));  // ~0.01, never zeros
    const double xb = static_cast<double>(x.bytes());
    report(row_gbps("pointwise", "add_rmsnorm_to_half", nd(n, dim), time_launch([&](cudaStream_t s) {
                      cuda::add_rmsnorm_to_half(h.get(), x.get(), d.get(), w.get(), n, dim, 1e-5f, s);
                    }),
                    3 * xb + xb / 2));  // read x, delta; write x; write y (fp16)
    report(row_gbps("pointwise", "swiglu_to_half", nd(n, ff), time_launch([&](cudaStream_t s) {
                      cuda::swiglu_to_half(hff.get(), gu.get(), n, ff, s);
                    }),
                    static_cast<double>(gu.bytes() + hff.bytes())));
  }
}

}  // namespace llm::harness
