#include "fp16_cuda_matrices.cuh"

#include <string>

#include "common/error.h"
#include "kernels/cuda/gemv/gemv.cuh"

namespace llm::stage07 {

Fp16CudaMatrices::Fp16CudaMatrices(const stage04::PackedWeights& w) : c_(w.config) {
  const std::size_t dim = static_cast<std::size_t>(c_.dim), qkv = static_cast<std::size_t>(c_.q_dim() + 2 * c_.kv_dim()),
                    qd = static_cast<std::size_t>(c_.q_dim()), ff = static_cast<std::size_t>(c_.hidden_dim),
                    vocab = static_cast<std::size_t>(c_.vocab_size);
  if (static_cast<int>(w.layers.size()) != c_.n_layers)
    throw Error("tensor parallel: the shard holds " + std::to_string(w.layers.size()) + " layers, its config says " +
                std::to_string(c_.n_layers));
  embed_ = upload(w.embed, vocab * dim, "token embedding");
  classifier_ = w.classifier.empty() ? embed_ : upload(w.classifier, vocab * dim, "classifier");
  for (const stage04::PackedLayer& L : w.layers)
    layers_.push_back({upload(L.wqkv, qkv * dim, "wqkv"), upload(L.wo, dim * qd, "wo"), upload(L.w13, 2 * ff * dim, "w13"),
                       upload(L.w2, dim * ff, "w2")});
  // The copies from pageable memory run on the legacy stream: wait for them once here.
  CUDA_CHECK(cudaDeviceSynchronize());
}

const __half* Fp16CudaMatrices::upload(const std::vector<std::uint16_t>& bits, std::size_t expect, const char* what) {
  if (bits.size() != expect)
    throw Error(std::string("tensor parallel: the shard's ") + what + " has " + std::to_string(bits.size()) +
                " values, its config needs " + std::to_string(expect));
  cuda::DeviceBuffer<__half> d(expect);
  CUDA_CHECK(cudaMemcpy(d.get(), bits.data(), expect * sizeof(std::uint16_t), cudaMemcpyHostToDevice));
  store_.push_back(std::move(d));
  return store_.back().get();
}

void Fp16CudaMatrices::matmul(float* y, const __half* x, int n, int layer, Matrix m, bool accumulate,
                              cuda::CublasGemm& gemm, cudaStream_t stream) {
  const Layer& d = layers_.at(static_cast<std::size_t>(layer));
  switch (m) {
    case Matrix::wqkv:
      return stage04::fp16_matmul(gemm, y, x, d.wqkv, n, c_.dim, c_.q_dim() + 2 * c_.kv_dim(), accumulate, stream);
    case Matrix::wo:
      return stage04::fp16_matmul(gemm, y, x, d.wo, n, c_.q_dim(), c_.dim, accumulate, stream);
    case Matrix::w13:
      return stage04::fp16_matmul(gemm, y, x, d.w13, n, c_.dim, 2 * c_.hidden_dim, accumulate, stream);
    case Matrix::w2:
      return stage04::fp16_matmul(gemm, y, x, d.w2, n, c_.hidden_dim, c_.dim, accumulate, stream);
  }
  throw Error("tensor parallel: matrix " + std::to_string(static_cast<int>(m)) + " is not one of a layer's");
}

void Fp16CudaMatrices::classify(float* y, const __half* x, int n, cuda::CublasGemm& gemm, cudaStream_t stream) {
  stage04::fp16_matmul(gemm, y, x, classifier_, n, c_.dim, c_.vocab_size, false, stream);
}

bool Fp16CudaMatrices::graph_capable(int n) const {
  return n <= llm::cuda::kGemvMaxRows && c_.dim % 8 == 0 && c_.q_dim() % 8 == 0 && c_.hidden_dim % 8 == 0;
}

}  // namespace llm::stage07
