// cuda_ops.cuh: stage 04's step on the GPU, operation by operation: CudaOps implements every
// operation of step_recipe.h with the kernels of kernels/cuda, and computes exactly what its CPU
// twin (CpuOps, cpu_ops.h) computes on the host: the same packed fp16 weights, the same fp16 K/V
// cache ([num_blocks * block_size, n_kv_heads, head_dim] per layer), the same fp16 rounding of
// every activation stored in fp16, the same step layout.
//
// Stage 05's quantized K/V cache (CudaOpsLimits::kv_cache int8 or fp8_e4m3) is the CPU twin's too
// (kernels/cpu/attention.h's QuantPagedKvView): per layer, code planes [slots, n_kv_heads, head_dim]
// of 1-byte codes and scale planes [slots, n_kv_heads] fp32. rope_store_kv quantizes each
// (token, KV head) row as it is appended (rope_kv.cuh's rope_store_kv_quant); decode rows read the
// codes with attention_decode 03 (03_split_kv_quant.cu: converted to fp32 in registers, the scales
// applied in the dot); prompt chunks gather their sequence's K/V dequantized to fp16
// (kv_gather.cuh) and run the same prefill kernel as fp16 (one extra fp16 rounding per value
// against the CPU twin, which applies the fp32 scale in the dot). E4M3 is only storage here: the
// codes are converted in registers, so no FP8 tensor-core arithmetic is involved.
//
// Host and device. Everything a step computes lives in device memory that is allocated once
// (weights at construction, activations for the largest step, the KV cache when a run starts).
// The host only does bookkeeping: per step it writes a few int arrays (tokens, positions, KV
// slots, block tables, sequence lengths, logit rows) into pinned host memory, copies them to
// fixed device buffers with one cudaMemcpyAsync, queues the kernels on one stream, and at the
// end copies the logits back. Every launch goes to the CudaOps stream, so the host never waits
// for the device except for the logits.
//
// Why the buffers are fixed: a decode step of a small model is a few hundred short kernels
// (about 10 per layer), and launching each from the host costs a few microseconds, which can be
// more than the kernel itself. CUDA graphs record the launches of a whole step once and replay
// them with one call; a graph bakes in every pointer and every launch argument, so it can be
// replayed for a later step only if that step's data sits at the same addresses. CudaOps keeps
// all per-step metadata at fixed device addresses and has a "graph body" mode in which the
// decode attention is launched with arguments that do not depend on the step (the context
// length as its bound, a fixed number of splits); cuda_executor.cu captures and replays.
#pragma once

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/model_config.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/cuda/gemm_cublas.cuh"
#include "cpu_ops.h"
#include "packed_weights.h"
#include "stages/03_continuous_batching/step_executor.h"
#include "step_layout.h"

namespace llm::stage04 {

/// Page-locked host memory (cudaMallocHost): what cudaMemcpyAsync needs to be asynchronous.
template <class T>
class PinnedArray {
 public:
  PinnedArray() = default;
  explicit PinnedArray(std::size_t count) : n_(count) {
    if (count > 0) CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&p_), count * sizeof(T)));
  }
  ~PinnedArray() {
    if (p_) (void)cudaFreeHost(p_);
  }
  PinnedArray(PinnedArray&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  PinnedArray& operator=(PinnedArray&& o) noexcept {
    if (this != &o) {
      if (p_) (void)cudaFreeHost(p_);
      p_ = o.p_, n_ = o.n_;
      o.p_ = nullptr, o.n_ = 0;
    }
    return *this;
  }
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
  T* get() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

/// A non-blocking CUDA stream (does not wait for the legacy default stream), destroyed after
/// the work queued on it is done.
class CudaStream {
 public:
  CudaStream() { CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~CudaStream() {
    if (s_) {
      (void)cudaStreamSynchronize(s_);
      (void)cudaStreamDestroy(s_);
    }
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

/// y[n, out] = x[n, in] W^T (or y += with `accumulate`) with fp16 W [out, in]: the GEMV
/// (kernels/cuda/gemv) for n <= kGemvMaxRows rows when in % 8 == 0, cuBLAS otherwise. Device
/// memory; queued on `stream`. Stage 04's every matmul, and stage 05's after a dequantization.
void fp16_matmul(cuda::CublasGemm& gemm, float* y, const __half* x, const __half* W, int n, int in, int out,
                 bool accumulate, cudaStream_t stream);

/// The weight matrices CudaOps multiplies by, wherever and however they are stored on the device:
/// the twin of CpuMatrices (cpu_ops.h). Stage 04's own are the fp16 matrices CudaOps uploads
/// itself (no CudaMatrices); stage 05 plugs in quantized ones (quant_cuda_matrices.cu). Shapes as
/// in packed_weights.h; x is fp16 [n, in] (16-byte aligned), y fp32 [n, out]; every call only
/// queues work on `stream`.
class CudaMatrices {
 public:
  using Matrix = CpuMatrices::Matrix;
  virtual ~CudaMatrices() = default;
  /// y[n, out] = x[n, in] W^T (y += with `accumulate`) for matrix m of `layer`.
  virtual void matmul(float* y, const __half* x, int n, int layer, Matrix m, bool accumulate, cuda::CublasGemm& gemm,
                      cudaStream_t stream) = 0;
  /// y[n, vocab] = x[n, dim] Wcls^T.
  virtual void classify(float* y, const __half* x, int n, cuda::CublasGemm& gemm, cudaStream_t stream) = 0;
  /// The embedding table the lookup kernel reads: fp16 [vocab, dim], device memory.
  virtual const __half* embed_table() const = 0;
  /// Whether every matmul of a step of n rows runs without cuBLAS or an allocation (so that the
  /// step can be captured in a CUDA graph).
  virtual bool graph_capable(int n) const = 0;
};

/// The sizes CudaOps allocates its step buffers for, and the K/V cache's format.
struct CudaOpsLimits {
  int token_budget = 256;  ///< most rows in one step: sizes every activation buffer [rows, ...]
  int max_running = 16;    ///< most sequences in one step: logit rows per download (more go in turns)
  /// f16 (2 bytes per value), or int8 / fp8_e4m3 (1 byte per value + an fp32 scale per token and
  /// KV head); f32 is refused.
  cpu::KvCodeType kv_cache = cpu::KvCodeType::f16;
};

/// The operations of step_recipe.h on the GPU. Owns the device weights, the per-layer fp16 K/V
/// cache, the activations, a cuBLAS handle and the stream every operation is queued on.
///
/// Activations (T = token_budget rows, device memory):
///   x     fp32 [T, dim]            residual stream
///   h16   fp16 [T, dim]            norm output, input of qkv and gate_up
///   qkv   fp32 [T, q_dim + 2 kv_dim]
///   q16   fp16 [T, q_dim]          roped q, input of attention
///   att16 fp16 [T, q_dim]          attention output, input of o_proj
///   gu    fp32 [T, 2 hidden_dim]   gate | up
///   f16   fp16 [T, hidden_dim]     SwiGLU output, input of down
///   logits: xg fp32 [R, dim], hl16 fp16 [R, dim], logits fp32 [R, vocab] (R = logit rows per turn)
/// Set up by reserve_cache: K and V fp16 [n_layers][num_blocks * block_size, kv_dim] (int8 / fp8:
/// codes of the same shape, 1 byte each, and scales fp32 [n_layers][num_blocks * block_size,
/// n_kv_heads]); the step
/// metadata (int32: tokens, positions, slots, seq_lens, logit_rows [T] each, each array starting
/// 16-byte aligned, tables [T, S] with S = min(ceil(context / block_size), num_blocks) columns)
/// and its pinned host twin; the gather buffers of prefill attention, fp16 [G, kv_dim] each,
/// G = min(context, num_blocks * block_size).
class CudaOps {
 public:
  /// Uploads a packed model (fp16 matrices, fp32 norms).
  CudaOps(const PackedWeights& w, const CudaOpsLimits& limits);
  /// Any matrices already on the device (stage 05's quantized ones); uploads the norms of `w`
  /// (fp32) and takes the config from it.
  CudaOps(const ModelWeights& w, std::unique_ptr<CudaMatrices> matrices, const CudaOpsLimits& limits);
  /// A synthetic model of shape `c`: matrices uniform in [-0.02, 0.02] and norm weights 1,
  /// generated on the device from `seed` (no host copy), untied classifier.
  CudaOps(const ModelConfig& c, std::uint64_t seed, const CudaOpsLimits& limits);
  ~CudaOps();
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  /// Device bytes of everything but the weights and the K/V cache (activations, metadata, gather
  /// buffers, decode-attention workspace) for a model of shape `c` run with these limits and
  /// `block_size`; `max_blocks` caps the pool (0: no cap). Needs a device (occupancy queries).
  static std::size_t workspace_bytes(const ModelConfig& c, const CudaOpsLimits& limits, int block_size, int max_blocks);

  /// Sizes the K/V cache (zeroed) and the buffers that depend on the pool for num_blocks blocks
  /// of block_size tokens. Returns false when it already had that size (nothing reallocated),
  /// true when device addresses changed (captured graphs must then be dropped).
  bool reserve_cache(int num_blocks, int block_size);

  // The operations of step_recipe.h, in the order run_step calls them.
  void begin_step(const StepLayout& L);
  void embed(const StepLayout& L);
  void attention_norm(int layer, const StepLayout& L);
  void qkv(int layer, const StepLayout& L);
  void rope_store_kv(int layer, const StepLayout& L);
  void attention(int layer, const StepLayout& L);
  void o_proj(int layer, const StepLayout& L);
  void ffn_norm(int layer, const StepLayout& L);
  void gate_up(int layer, const StepLayout& L);
  void swiglu(const StepLayout& L);
  void down(int layer, const StepLayout& L);
  /// Logits of L.logit_rows, [rows, vocab] fp32, in that order. In graph-body mode only queues
  /// the device work (into the logits buffer) and returns an empty vector.
  std::vector<float> logits(const StepLayout& L);
  /// Waits for the stream (profile_step calls it between operations).
  void sync() { CUDA_CHECK(cudaStreamSynchronize(stream())); }

  // ---- CUDA graph support (used by cuda_executor.cu) ----
  /// Checks and uploads L's metadata for a graph replay: tables with the fixed stride S, decode
  /// attention bounded by the context instead of L.max_seq_len, a fixed split count per batch.
  void upload_for_graph(const StepLayout& L);
  /// In graph-body mode begin_step uploads nothing (upload_for_graph did) and logits() leaves the
  /// result on the device; everything between is queued as usual, so that run_step can be
  /// captured with cudaStreamBeginCapture on stream().
  void set_graph_body(bool on) { graph_body_ = on; }
  /// Copies the first `rows` logit rows to the host after a graph replay (waits for the stream).
  std::vector<float> download_logits(int rows);
  /// Whether a decode-only step of n rows with `rows` logit rows can run inside a graph: every
  /// matmul is a GEMV (n <= kGemvMaxRows, widths multiples of 8: no cuBLAS, whose workspace
  /// allocation cannot be captured) and the logits fit one turn.
  bool graph_capable(int n, int rows) const;

  cudaStream_t stream() const { return stream_.get(); }
  const ModelConfig& config() const { return c_; }
  int block_size() const { return block_size_; }
  int num_blocks() const { return num_blocks_; }
  /// How the K/V cache stores its values (f16, int8 or fp8_e4m3).
  cpu::KvCodeType kv_cache() const { return limits_.kv_cache; }

 private:
  struct Layer {
    const float* attn_norm = nullptr;  // [dim]
    const float* ffn_norm = nullptr;   // [dim]
    const __half* wqkv = nullptr;      // [q_dim + 2 kv_dim, dim]
    const __half* wo = nullptr;        // [dim, q_dim]
    const __half* w13 = nullptr;       // [2 hidden, dim]
    const __half* w2 = nullptr;        // [dim, hidden]
  };
  /// How this step's attention is launched (set by the upload).
  struct StepParams {
    int table_stride = 0;        // columns of the device tables
    int decode_max_seq_len = 0;  // bound given to the decode kernel
    int decode_splits = 0;       // 0: the kernel chooses
  };

  explicit CudaOps(const ModelConfig& c, const CudaOpsLimits& limits);  // common part
  void allocate_activations();
  const __half* upload_half(const std::vector<std::uint16_t>& bits, std::size_t expect, const char* what);
  const float* upload_float(const std::vector<float>& v, std::size_t expect, const char* what);
  __half* random_half(std::size_t count, std::uint64_t seed);
  float* ones(std::size_t count);
  void upload(const StepLayout& L, bool for_graph);
  /// y[n, out] = x W^T (or += with accumulate) for matrix m of `layer`: matrices_ when set,
  /// else fp16_matmul on this object's fp16 weights.
  void project(float* y, const __half* x, int layer, CudaMatrices::Matrix m, int n, bool accumulate);
  /// Device logits of rows logit_rows[first .. first + rows) into logits_ (rows <= logit_cap_).
  void logits_device(int first, int rows);
  bool quantized_kv() const { return limits_.kv_cache != cpu::KvCodeType::f16; }
  /// Layer `layer`'s K or V values: fp16 (f16 cache) or 1-byte codes (int8 / fp8), and the scales
  /// of the codes.
  __half* k_cache(int layer) const;
  __half* v_cache(int layer) const;
  std::uint8_t* k_codes(int layer) const;
  std::uint8_t* v_codes(int layer) const;
  float* k_scales(int layer) const;
  float* v_scales(int layer) const;

  ModelConfig c_;
  CudaOpsLimits limits_;
  int logit_cap_ = 1;  // R
  // Declared before gemm_ (destroyed after it: the handle's stream outlives the handle) and
  // before every buffer (their cudaFree runs before the stream goes).
  CudaStream stream_;
  llm::cuda::CublasGemm gemm_;

  // Weights: every tensor its own allocation, kept alive here.
  std::vector<cuda::DeviceBuffer<__half>> half_store_;
  std::vector<cuda::DeviceBuffer<float>> float_store_;
  const __half* embed_ = nullptr;       // [vocab, dim]
  const __half* classifier_ = nullptr;  // [vocab, dim] (== embed_ when tied)
  const float* output_norm_ = nullptr;  // [dim]
  std::vector<Layer> layers_;
  // Stage 05's matrices (null: the fp16 ones above). Declared after the stream and the handle:
  // destroyed before them.
  std::unique_ptr<CudaMatrices> matrices_;

  // Activations.
  cuda::DeviceBuffer<float> x_, qkv_, gu_, xg_, logits_;
  cuda::DeviceBuffer<__half> h16_, q16_, att16_, f16_, hl16_;
  cuda::DeviceBuffer<float> decode_ws_;  // split-KV partials
  std::size_t decode_ws_bytes_ = 0;
  PinnedArray<float> host_logits_;  // [R, vocab]

  // Pool-dependent (reserve_cache).
  int num_blocks_ = 0, block_size_ = 0, table_cols_ = 0, gather_cap_ = 0;
  std::size_t slots_per_layer_ = 0;
  // [n_layers * slots, kv_dim] values of kv_code_bytes(kv_cache) bytes: fp16 or codes
  cuda::DeviceBuffer<std::uint8_t> k_cache_, v_cache_;
  cuda::DeviceBuffer<float> k_scales_, v_scales_;  // int8 / fp8: [n_layers * slots, n_kv_heads]
  cuda::DeviceBuffer<__half> gather_k_, gather_v_;
  cuda::DeviceBuffer<int> meta_;   // tokens | positions | slots | seq_lens | logit_rows | tables
  PinnedArray<int> hmeta_;  // the same, on the host
  int *d_tokens_ = nullptr, *d_positions_ = nullptr, *d_slots_ = nullptr, *d_seq_lens_ = nullptr,
      *d_logit_rows_ = nullptr, *d_tables_ = nullptr;

  StepParams step_;
  bool graph_body_ = false;
  bool uploaded_ = false;  // metadata of the current step is on the device
};

}  // namespace llm::stage04
