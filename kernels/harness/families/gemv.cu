// gemv.cu: the kernel harness's decode-GEMV family (kernels/cuda/gemv/).
//
// check: every version against llm::cpu::matmul on the same fp16-rounded W and x (as floats), at
//        every n from 1 to 8 on a small-model shape (576 <-> 1536), n = 1, 3, 8 at 4096 x 4096,
//        and awkward shapes (out = 1, out = 33, in = 8, in = 1000), each with and without
//        `accumulate`. Without it y is poisoned (NaN) first; with it y starts from known random
//        values and the twin adds them. Tolerance kTolFp32 * 10 = 1e-3 of the row's largest
//        value: both sides multiply the same fp16-exact numbers in fp32 and differ only in the
//        order of the sums (a lane's strided partial sums, then a shuffle tree, against the
//        CPU's order), an error of a few fp32 ulps times sqrt(in) relative to the row's scale.
// bench: out x in = 4096 x 4096, 14336 x 4096 (gate/up), 4096 x 14336 (down), 128256 x 4096
//        (Llama-3 LM head), at n = 1 and 8 (--quick: 4096 x 4096 at n = 1); GB/s = (W + x + y
//        bytes) / time, W dominating. Timed as quant_gemv's rows are (time_batched: the median of
//        20 batches of 32 back-to-back launches, launch i reading copy i % copies of W from one
//        device-random pool, slots 256-byte aligned, enough copies that each launch finds its W
//        evicted from L2 (rotation_pool_copies: 5 of 32 MiB at 4096 x 4096 with a 50 MiB L2; one
//        copy where W alone is two L2s or more); x and y are shared, as a decode step finds
//        them): the 02 GEMV at 4096 x 4096 takes about 8 us on an H200, and an event pair
//        around a single cold launch would add microseconds to that.
//
//   build/kernels/kernel_harness check gemv [--version N] [--quick]
//   build/kernels/kernel_harness bench gemv [--version N] [--quick]
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/gemv/gemv.cuh"
#include "kernels/harness/families/families.h"

namespace llm::harness {

namespace {

struct GemvCase {
  int n, in, out;
};

std::vector<GemvCase> check_cases(bool quick) {
  std::vector<GemvCase> cases;
  // Every n (each is its own template instance in 02) on a SmolLM-sized projection, both ways.
  for (int n = 1; n <= cuda::kGemvMaxRows; ++n) {
    if (quick && n != 1 && n != 3 && n != 8) continue;
    cases.push_back({n, 576, 1536});
    cases.push_back({n, 1536, 576});
  }
  for (int n : {1, 3, 8}) {
    if (!quick || n == 1) cases.push_back({n, 4096, 4096});
    cases.push_back({n, 4096, 1});    // a single output row: one warp, most lanes' rows missing
    cases.push_back({n, 1000, 33});   // in not a multiple of 256, out not a multiple of anything
    cases.push_back({n, 8, 33});      // one 16-byte load per row
    cases.push_back({n, 2056, 517});  // a row tail of one uint4 after whole warp strides
  }
  return cases;
}

bool wants(const FamilyOptions& o, int version) {
  return o.version == 0 || o.version == version;
}

/// validate() must name the field of an impossible argument.
bool check_validation() {
  cuda::GemvArgs a;
  a.W = a.x = reinterpret_cast<const __half*>(256);
  a.y = reinterpret_cast<float*>(256);
  a.in = 64;
  a.out = 3;
  bool ok = true;
  auto expect_throw = [&](const cuda::GemvArgs& bad, const char* text) {
    try {
      cuda::validate(bad);
      std::printf("FAIL gemv validate: accepted bad args (%s)\n", text);
      ok = false;
    } catch (const std::invalid_argument& e) {
      if (std::string(e.what()).find(text) == std::string::npos) {
        std::printf("FAIL gemv validate: message \"%s\" does not say \"%s\"\n", e.what(), text);
        ok = false;
      }
    }
  };
  cuda::validate(a);  // the base args are fine
  auto bad = a;
  bad.n = cuda::kGemvMaxRows + 1;
  expect_throw(bad, "n = 9");
  bad = a;
  bad.in = 12;
  expect_throw(bad, "in = 12");
  bad = a;
  bad.out = 0;
  expect_throw(bad, "out = 0");
  bad = a;
  bad.x = reinterpret_cast<const __half*>(258);
  expect_throw(bad, "x = ");
  if (ok) std::printf("ok   gemv validate rejects bad args\n");
  return ok;
}

}  // namespace

bool check_gemv(const FamilyOptions& o) {
  bool all_ok = check_validation();
  std::uint64_t seed = o.seed * 2654435761u;
  for (const GemvCase& c : check_cases(o.quick)) {
    // fp16-exact inputs: the twin multiplies the very values the kernel reads.
    std::vector<float> W = randn(static_cast<std::size_t>(c.out) * c.in, ++seed);
    std::vector<float> x = randn(static_cast<std::size_t>(c.n) * c.in, ++seed);
    cpu::round_to_half(W);
    cpu::round_to_half(x);
    const std::vector<float> y0 = randn(static_cast<std::size_t>(c.n) * c.out, ++seed);
    std::vector<float> product(static_cast<std::size_t>(c.n) * c.out);
    cpu::matmul(product.data(), x.data(), W.data(), c.n, c.in, c.out);

    const DeviceBuffer<__half> d_W = upload_half(W), d_x = upload_half(x);
    for (const cuda::GemvVersion& ver : cuda::kGemvVersions) {
      if (!wants(o, ver.number)) continue;
      for (bool accumulate : {false, true}) {
        DeviceBuffer<float> d_y = upload(y0);
        if (!accumulate) d_y.poison();
        std::vector<float> want = product;
        if (accumulate)
          for (std::size_t i = 0; i < want.size(); ++i) want[i] += y0[i];

        cuda::GemvArgs args;
        args.W = d_W.get();
        args.x = d_x.get();
        args.y = d_y.get();
        args.n = c.n;
        args.in = c.in;
        args.out = c.out;
        args.accumulate = accumulate;
        ver.run(args, nullptr);
        CUDA_CHECK(cudaGetLastError());
        const std::vector<float> got = download(d_y);

        const std::string what = std::string("gemv ") + ver.name + " n=" + std::to_string(c.n) +
                                 " in=" + std::to_string(c.in) + " out=" + std::to_string(c.out) +
                                 (accumulate ? " accumulate" : "");
        all_ok = check_close(what, got, want, static_cast<std::size_t>(c.out), kTolFp32 * 10) && all_ok;
      }
    }
  }
  return all_ok;
}

void bench_gemv(const FamilyOptions& o) {
  struct Size {
    int out, in;
    const char* what;
  };
  std::vector<Size> sizes = {
      {4096, 4096, "attn proj"}, {14336, 4096, "gate/up"}, {4096, 14336, "down"}, {128256, 4096, "LM head"}};
  std::vector<int> rows = {1, cuda::kGemvMaxRows};
  if (o.quick) sizes.resize(1), rows = {1};
  std::uint64_t seed = o.seed * 40503u;
  for (const Size& sz : sizes) {
    // W as `copies` slots of one pool; a slot keeps W's 16-byte alignment (256 bytes).
    const std::size_t w_bytes = static_cast<std::size_t>(sz.out) * sz.in * sizeof(__half);
    const std::size_t slot = (w_bytes + 255) / 256 * 256;
    const int copies = rotation_pool_copies(slot);
    DeviceBuffer<__half> d_pool(slot / sizeof(__half) * static_cast<std::size_t>(copies));
    DeviceBuffer<__half> d_x(static_cast<std::size_t>(cuda::kGemvMaxRows) * sz.in);
    DeviceBuffer<float> d_y(static_cast<std::size_t>(cuda::kGemvMaxRows) * sz.out);
    fill_random(d_pool, ++seed);
    fill_random(d_x, ++seed);
    d_y.poison();
    std::printf("  W: %d rotated copies of %.1f MiB\n", copies, slot / 1048576.0);
    for (int n : rows) {
      cuda::GemvArgs args;
      args.W = d_pool.get();
      args.x = d_x.get();
      args.y = d_y.get();
      args.n = n;
      args.in = sz.in;
      args.out = sz.out;
      const double bytes = static_cast<double>(sz.out) * sz.in * sizeof(__half) +
                           static_cast<double>(n) * sz.in * sizeof(__half) +
                           static_cast<double>(n) * sz.out * sizeof(float);
      const std::string shape = "n=" + std::to_string(n) + " out=" + std::to_string(sz.out) +
                                " in=" + std::to_string(sz.in) + " (" + sz.what + ")";
      for (const cuda::GemvVersion& ver : cuda::kGemvVersions) {
        if (!wants(o, ver.number)) continue;
        const Timing t = time_batched([&](cudaStream_t stream, long i) {
          cuda::GemvArgs a = args;
          a.W = d_pool.get() + static_cast<std::size_t>(i % copies) * (slot / sizeof(__half));
          ver.run(a, stream);
        });
        report(row_gbps("gemv", ver.name, shape, t, bytes));
      }
    }
  }
}

}  // namespace llm::harness
