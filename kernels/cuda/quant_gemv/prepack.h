// prepack.h: GGUF Q8_0 / Q4_0 rows re-packed, on the CPU at load, into the layout that
// 02_prepacked.cu reads with coalesced 16-byte loads (packed_layout.h says where every byte
// goes), and the way back. Host code only: compiled into llm_kernels_cpu, so the round trip is
// tested in CI without a GPU.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/tensor_type.h"
#include "kernels/cuda/quant_gemv/packed_layout.h"

namespace llm::cuda::qgemv {

/// A packed matrix on the host: the quant stream (shape.quant_chunks() * 16 bytes) and the fp16
/// scale stream (shape.scale_count() values, as bits), ready to copy to the device as they are.
struct PackedMatrix {
  PackedShape shape;
  std::vector<std::uint8_t> quants;
  std::vector<std::uint16_t> scales;
};

/// The packed type of a GGUF type: Q8_0 and Q4_0; anything else throws std::invalid_argument
/// naming the type.
PackedType packed_type(TensorType t);

/// Packs `out` rows of `in` weights stored as GGUF type t (Q8_0 or Q4_0; in a multiple of 32,
/// rows of row_bytes(t, in) bytes back to back). Padding (rows up to a multiple of kPackRows,
/// chunks up to whole steps) is zero, scales included. Throws std::invalid_argument for another
/// type or a shape it cannot pack, naming the field and the value.
PackedMatrix pack_for_gemv(TensorType t, const std::uint8_t* rows, int out, int in);

/// The inverse: the GGUF bytes of the `out` rows (the padding dropped).
std::vector<std::uint8_t> unpack_to_gguf(const PackedMatrix& p);

}  // namespace llm::cuda::qgemv
