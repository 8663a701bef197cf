#include "quant_cpu_ops.h"

#include "common/error.h"
#include "fp8_matmul.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant_matmul/quant_matmul.h"
#include "kv_quant.h"

namespace llm::stage05 {

MatmulKind parse_matmul(const std::string& s) {
  if (s == "fused") return MatmulKind::fused;
  if (s == "int8") return MatmulKind::int8;
  throw Error("--matmul " + printable(s) + ": must be fused or int8");
}

void stored_matmul(float* y, const float* x, const StoredMatrix& m, int n, MatmulKind kind) {
  switch (m.format) {
    case WeightFormat::f32:
    case WeightFormat::f16:
      cpu::matmul(y, x, m.values.data(), n, m.cols, m.rows);
      return;
    case WeightFormat::fp8:
      fp8_matmul(y, x, m.bytes.data(), m.row_scales.data(), n, m.cols, m.rows);
      return;
    default: {
      const cpu::qmm::QuantMatrix W{block_type(m.format), m.bytes.data(), m.cols, m.rows};
      if (kind == MatmulKind::int8)
        cpu::qmm::matmul_03_int8(y, x, W, n);
      else
        cpu::qmm::matmul_02_fused(y, x, W, n);
    }
  }
}

QuantCpuMatrices::QuantCpuMatrices(QuantWeights q, MatmulKind kind) : q_(std::move(q)), kind_(kind) {
  auto check = [](const StoredMatrix& m) {
    if (is_block_format(m.format))
      cpu::qmm::QuantMatrix{block_type(m.format), m.bytes.data(), m.cols, m.rows}.validate();
  };
  check(q_.embed);
  check(q_.classifier_or_embed());
  for (const QuantLayer& L : q_.layers) check(L.wqkv), check(L.wo), check(L.w13), check(L.w2);
}

void QuantCpuMatrices::matmul(float* y, const float* x, int n, int layer, Matrix m) {
  const QuantLayer& L = q_.layers[static_cast<std::size_t>(layer)];
  const StoredMatrix& W = m == Matrix::wqkv ? L.wqkv : m == Matrix::wo ? L.wo : m == Matrix::w13 ? L.w13 : L.w2;
  stored_matmul(y, x, W, n, kind_);
}

void QuantCpuMatrices::classify(float* y, const float* x, int n) {
  stored_matmul(y, x, q_.classifier_or_embed(), n, kind_);
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
