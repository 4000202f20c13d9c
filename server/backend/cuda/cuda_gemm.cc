// Matrix products of the CUDA backend. bf16 operands, fp32 accumulation (CUBLAS_COMPUTE_32F).
//
// Row-major y [M, N] = x [M, K] · w [N, K]ᵀ is, in cuBLAS's column-major terms, yᵀ [N, M] =
// op(w) · xᵀ with w read as a K × N column-major matrix and transposed. Linear goes through
// cuBLASLt with one plan (descriptors + heuristic algorithm) cached per shape, output dtype and
// pointer alignment; per-head and per-expert products use cuBLAS (strided-batched / plain GemmEx).

#include <string>

#include "absl/strings/str_cat.h"
#include "cuda/add.cuh"
#include "server/backend/cuda/cuda_backend.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/cuda_status.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

// Largest power of two (<= 256) dividing the address: cuBLASLt's heuristic must not assume more.
int Alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

}  // namespace

absl::StatusOr<CudaBackend::LtPlan*> CudaBackend::GetLtPlan(int64_t m, int64_t n, int64_t k, DType out_dtype,
                                                            int align) {
  const LtKey key{m, n, k, static_cast<int>(out_dtype), align};
  if (auto it = lt_plans_.find(key); it != lt_plans_.end()) return &it->second;
  LtPlan plan;
  const cudaDataType_t dt = out_dtype == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF;
  auto cleanup = [&plan] {
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.d) cublasLtMatrixLayoutDestroy(plan.d);
    if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
  };
  auto fail = [&](cublasStatus_t s, const char* what) {
    cleanup();
    return cuda_status::FromCublas(s, absl::StrCat("Linear: ", what, " for [", m, ", ", k, "] x [", n, ", ", k, "]"));
  };
  cublasStatus_t s = cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s != CUBLAS_STATUS_SUCCESS) return fail(s, "cublasLtMatmulDescCreate");
  const cublasOperation_t trans_a = CUBLAS_OP_T;
  s = cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a));
  if (s != CUBLAS_STATUS_SUCCESS) return fail(s, "TRANSA");
  if ((s = cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, k, n, k)) != CUBLAS_STATUS_SUCCESS ||
      (s = cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, k, m, k)) != CUBLAS_STATUS_SUCCESS ||
      (s = cublasLtMatrixLayoutCreate(&plan.d, dt, n, m, n)) != CUBLAS_STATUS_SUCCESS) {
    return fail(s, "cublasLtMatrixLayoutCreate");
  }
  cublasLtMatmulPreference_t pref = nullptr;
  if ((s = cublasLtMatmulPreferenceCreate(&pref)) != CUBLAS_STATUS_SUCCESS) {
    return fail(s, "cublasLtMatmulPreferenceCreate");
  }
  const uint64_t ws = lt_workspace_.bytes();
  const uint32_t al = static_cast<uint32_t>(align);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
    cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof(al));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  s = cublasLtMatmulAlgoGetHeuristic(lt_, plan.desc, plan.a, plan.b, plan.d, plan.d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS) return fail(s, "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0) return fail(CUBLAS_STATUS_NOT_SUPPORTED, "no cuBLASLt algorithm");
  plan.algo = result.algo;
  return &lt_plans_.emplace(key, plan).first->second;
}

absl::Status CudaBackend::Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckLinear(x, w, bias, out));
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  if (m == 0 || n == 0) return absl::OkStatus();
  if (k == 0) {
    RETURN_IF_ERROR(Zero(out));
  } else {
    const int align = std::min({Alignment(x.data()), Alignment(w.data()), Alignment(out.data())});
    ASSIGN_OR_RETURN(LtPlan * plan, GetLtPlan(m, n, k, out.dtype(), align));
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_RETURN_IF_ERROR(
        cublasLtMatmul(lt_, plan->desc, &alpha, w.data(), plan->a, x.data(), plan->b, &beta, out.data(), plan->d,
                       out.data(), plan->d, &plan->algo, lt_workspace_.data(), lt_workspace_.bytes(), stream_),
        absl::StrCat("Linear: cublasLtMatmul [", m, ", ", k, "] x [", n, ", ", k, "]"));
  }
  if (!bias.defined()) return absl::OkStatus();
  kernels::AddBiasParams p;
  p.x = out.data();
  p.x_is_f32 = out.dtype() == DType::kF32;
  p.bias = static_cast<const float*>(bias.data());
  p.rows = m;
  p.cols = n;
  return cuda_status::FromCuda(kernels::LaunchAddBias(p, stream_), "Linear: bias");
}

absl::Status CudaBackend::HeadwiseLinear(const Tensor& x, const Tensor& w, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckHeadwiseLinear(x, w, out));
  const int64_t T = x.dim(0), H = x.dim(1), in = x.dim(2), n = w.dim(1);
  if (T == 0 || H == 0 || n == 0) return absl::OkStatus();
  if (in == 0) return Zero(out);
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_RETURN_IF_ERROR(
      cublasGemmStridedBatchedEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, T, in, &alpha, w.data(), CUDA_R_16BF, in, n * in,
                                 x.data(), CUDA_R_16BF, H * in, in, &beta, out.data(), CUDA_R_16BF, H * n, n, H,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      absl::StrCat("HeadwiseLinear: cublasGemmStridedBatchedEx ", x.DebugString(), " x ", w.DebugString()));
  return absl::OkStatus();
}

absl::Status CudaBackend::GemmXWt(const void* x, int64_t ldx, const void* w, int64_t ldw, void* out, int64_t ldo,
                                  int64_t m, int64_t n, int64_t k) {
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_RETURN_IF_ERROR(
      cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, ldw, x, CUDA_R_16BF, ldx, &beta,
                   out, CUDA_R_16BF, ldo, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      absl::StrCat("MoeExperts: cublasGemmEx [", m, ", ", k, "] x [", n, ", ", k, "]"));
  return absl::OkStatus();
}

}  // namespace moeserve
