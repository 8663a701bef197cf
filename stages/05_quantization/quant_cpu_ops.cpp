#include "quant_cpu_ops.h"

#include "common/error.h"
#include "fp8_matmul.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant_matmul/quant_matmul.h"
#include "kv_quant.h"

namespace llm::stage05 {

MatmulKind parse_matmul(const std::string& s) {
  if (s == "auto") return MatmulKind::automatic;
  if (s == "fused") return MatmulKind::fused;
  if (s == "int8") return MatmulKind::int8;
  throw Error("--matmul " + printable(s) + ": must be auto, fused or int8");
}

MatmulKind resolve_matmul(MatmulKind k) {
  if (k != MatmulKind::automatic) return k;
  return cpu::qmm::available_int8_paths().back() == cpu::qmm::Int8Path::Scalar ? MatmulKind::fused : MatmulKind::int8;
}

namespace {

cpu::qmm::QuantMatrix block_matrix(const StoredMatrix& m) {
  return {block_type(m.format), m.bytes.data(), m.cols, m.rows};
}

// Repacks m for quant_matmul 04 and, unless `keep_bytes`, frees its GGUF bytes (no longer read).
cpu::qmm::PackedMatrix pack(StoredMatrix& m, bool keep_bytes) {
  cpu::qmm::PackedMatrix p = cpu::qmm::pack_rows_16(block_matrix(m));
  if (!keep_bytes) std::vector<std::uint8_t>().swap(m.bytes);
  return p;
}

}  // namespace

void QuantCpuMatrices::multiply(float* y, const float* x, int n, const StoredMatrix& m,
                                const cpu::qmm::PackedMatrix* packed) const {
  switch (m.format) {
    case WeightFormat::f32:
    case WeightFormat::f16:
      cpu::matmul(y, x, m.values.data(), n, m.cols, m.rows);
      return;
    case WeightFormat::fp8:
      fp8_matmul(y, x, m.bytes.data(), m.row_scales.data(), n, m.cols, m.rows);
      return;
    default:
      if (packed != nullptr)
        cpu::qmm::matmul_04_int8_packed(y, x, *packed, n);
      else
        cpu::qmm::matmul_02_fused(y, x, block_matrix(m), n);
  }
}

QuantCpuMatrices::QuantCpuMatrices(QuantWeights q, MatmulKind kind) : q_(std::move(q)), kind_(resolve_matmul(kind)) {
  auto check = [](const StoredMatrix& m) {
    if (is_block_format(m.format)) block_matrix(m).validate();
  };
  check(q_.embed);
  check(q_.classifier_or_embed());
  for (const QuantLayer& L : q_.layers) check(L.wqkv), check(L.wo), check(L.w13), check(L.w2);
  if (kind_ != MatmulKind::int8) return;
  // Version 04 reads its own layout: repack every block-format matrix once, here.
  for (QuantLayer& L : q_.layers) {
    PackedLayer& P = packed_.emplace_back();
    for (auto [m, p] : {std::pair{&L.wqkv, &P.wqkv}, {&L.wo, &P.wo}, {&L.w13, &P.w13}, {&L.w2, &P.w2}})
      if (is_block_format(m->format)) *p = pack(*m, false);
  }
  StoredMatrix& cls = q_.classifier.rows == 0 ? q_.embed : q_.classifier;
  if (is_block_format(cls.format)) packed_classifier_ = pack(cls, &cls == &q_.embed);  // tied: embed_row reads it
}

void QuantCpuMatrices::matmul(float* y, const float* x, int n, int layer, Matrix m) {
  const auto l = static_cast<std::size_t>(layer);
  const QuantLayer& L = q_.layers[l];
  const StoredMatrix& W = m == Matrix::wqkv ? L.wqkv : m == Matrix::wo ? L.wo : m == Matrix::w13 ? L.w13 : L.w2;
  const cpu::qmm::PackedMatrix* P = nullptr;
  if (!packed_.empty()) {
    const PackedLayer& PL = packed_[l];
    P = m == Matrix::wqkv ? &PL.wqkv : m == Matrix::wo ? &PL.wo : m == Matrix::w13 ? &PL.w13 : &PL.w2;
    if (!P->data) P = nullptr;
  }
  multiply(y, x, n, W, P);
}

void QuantCpuMatrices::classify(float* y, const float* x, int n) {
  multiply(y, x, n, q_.classifier_or_embed(), packed_classifier_.data ? &packed_classifier_ : nullptr);
}

void QuantCpuMatrices::embed_row(float* out, int t) {
  q_.embed.dequantize_row(t, out);
}

std::unique_ptr<stage04::CpuStepExecutor> make_quant_cpu_executor(const ModelWeights& w, QuantWeights q,
                                                                  MatmulKind kind, const std::string& kv_cache) {
  const double bytes = q.bytes_per_step();
  auto ops = std::make_unique<stage04::CpuOps>(w, std::make_unique<QuantCpuMatrices>(std::move(q), kind),
                                               kv_storage(kv_cache));
  return std::make_unique<stage04::CpuStepExecutor>(w.config, std::move(ops), bytes);
}

}  // namespace llm::stage05
