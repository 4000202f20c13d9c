// Row ops of the CUDA backend (embedding, gathers, norms, residual add, RoPE, SiLU-and-mul):
// validate on the host (cuda_checks.h), then queue one launcher from cuda/ on the backend's stream.

#include "cuda/add.cuh"
#include "cuda/gather_rows.cuh"
#include "cuda/rms_norm.cuh"
#include "cuda/rope.cuh"
#include "cuda/silu_mul.cuh"
#include "server/backend/cuda/cuda_backend.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/cuda_launch.h"
#include "server/common/status_macros.h"

namespace moeserve {

using cuda_launch::bf16;
using cuda_launch::Flags;
using cuda_launch::Launched;
using cuda_launch::Ptr;
namespace k = ::moeserve::kernels;

absl::Status CudaBackend::Embedding(const Tensor& table, const Tensor& ids, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckEmbedding(table, ids, out));
  k::GatherRowsParams p;
  p.src = table.data();
  p.dst = out.data();
  p.indices = Ptr<const int32_t>(ids);
  p.num_indices = ids.dim(0);
  p.src_rows = table.dim(0);
  p.row_bytes = table.dim(1) * 2;
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchGatherRows(p, stream_), "Embedding");
}

absl::Status CudaBackend::EmbeddingShard(const Tensor& table, const Tensor& ids, int64_t first_id, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckEmbedding(table, ids, out));
  if (first_id < 0 || first_id > 0x7fffffff) {
    return absl::InvalidArgumentError(absl::StrCat("EmbeddingShard: first_id ", first_id, " is outside [0, 2^31)"));
  }
  k::GatherRowsParams p;
  p.src = table.data();
  p.dst = out.data();
  p.indices = Ptr<const int32_t>(ids);
  p.num_indices = ids.dim(0);
  p.src_rows = table.dim(0);
  p.row_bytes = table.dim(1) * 2;
  p.index_offset = static_cast<int32_t>(first_id);
  p.zero_outside = true;  // another rank's row, not an error
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchGatherRows(p, stream_), "EmbeddingShard");
}

absl::Status CudaBackend::GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckGatherRows(x, indices, out));
  k::GatherRowsParams p;
  p.src = x.data();
  p.dst = out.data();
  p.indices = Ptr<const int32_t>(indices);
  p.num_indices = indices.dim(0);
  p.src_rows = x.dim(0);
  p.row_bytes = x.dim(1) * static_cast<int64_t>(DTypeSize(x.dtype()));
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchGatherRows(p, stream_), "GatherRows");
}

absl::Status CudaBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckRmsNorm(x, w, out));
  k::RmsNormParams p;
  p.x = Ptr<const bf16>(x);
  p.weight = Ptr<const float>(w);
  p.out = Ptr<bf16>(out);
  p.rows = x.dim(0);
  p.dim = x.dim(1);
  p.eps = eps;
  return Launched(k::LaunchRmsNorm(p, stream_), "RmsNorm");
}

absl::Status CudaBackend::AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& w, float eps,
                                     const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckAddRmsNorm(x, residual, w, out));
  k::RmsNormParams p;
  p.x = Ptr<const bf16>(x);
  p.residual = Ptr<bf16>(residual);
  p.weight = Ptr<const float>(w);
  p.out = Ptr<bf16>(out);
  p.rows = x.dim(0);
  p.dim = x.dim(1);
  p.eps = eps;
  return Launched(k::LaunchRmsNorm(p, stream_), "AddRmsNorm");
}

absl::Status CudaBackend::Add(const Tensor& a, const Tensor& b, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckAdd(a, b, out));
  k::AddParams p;
  p.a = Ptr<const bf16>(a);
  p.b = Ptr<const bf16>(b);
  p.out = Ptr<bf16>(out);
  p.n = a.numel();
  return Launched(k::LaunchAdd(p, stream_), "Add");
}

absl::Status CudaBackend::Rope(const Tensor& x, const Tensor& positions, const Tensor& cos_sin, int32_t rotary_dim,
                               RopeStyle style) {
  RETURN_IF_ERROR(cuda_checks::CheckRope(x, positions, cos_sin, rotary_dim));
  k::RopeParams p;
  p.x = Ptr<bf16>(x);
  p.positions = Ptr<const int32_t>(positions);
  p.cos_sin = Ptr<const float>(cos_sin);
  p.tokens = x.dim(0);
  p.heads = x.dim(1);
  p.head_dim = x.dim(2);
  p.rotary_dim = rotary_dim;
  p.max_position = cos_sin.dim(0);
  p.interleaved = style == RopeStyle::kInterleaved;
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchRope(p, stream_), "Rope");
}

absl::Status CudaBackend::SiluMul(const Tensor& gate_up, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckSiluMul(gate_up, out));
  k::SiluMulParams p;
  p.gate_up = Ptr<const bf16>(gate_up);
  p.out = Ptr<bf16>(out);
  p.rows = out.dim(0);
  p.inter = out.dim(1);
  return Launched(k::LaunchSiluMul(p, stream_), "SiluMul");
}

}  // namespace moeserve
