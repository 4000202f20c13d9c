// Row-wise ops of the CPU backend: embedding, norms, add, rotary embedding, SiLU gating, gathers.

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/cpu_internal.h"
#include "server/common/status_macros.h"

namespace moeserve {

using cpu::Expect;
using cpu::OpError;
using cpu::RowGrain;

namespace {

// First index i with v[i] outside [0, limit), or -1.
int64_t FindOutOfRange(const int32_t* v, int64_t n, int64_t limit) {
  for (int64_t i = 0; i < n; ++i) {
    if (v[i] < 0 || v[i] >= limit) return i;
  }
  return -1;
}

}  // namespace

absl::Status CpuBackend::Embedding(const Tensor& table, const Tensor& ids, const Tensor& out) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(cpu::ExpectWeight(kOp, "table", table, {"V", "d"}));
  RETURN_IF_ERROR(Expect(kOp, "ids", ids, DType::kI32, {"T"}));
  const int64_t V = table.dim(0), d = table.dim(1), T = ids.dim(0);
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {T, d}));
  const int32_t* id = ids.data_as<int32_t>();
  if (int64_t bad = FindOutOfRange(id, T, V); bad >= 0) {
    return OpError(kOp, absl::StrCat("ids[", bad, "] = ", id[bad], " is outside [0, ", V, ")"));
  }
  const char* tab = static_cast<const char*>(table.data());
  const int64_t row_bytes = d * static_cast<int64_t>(DTypeSize(table.dtype()));
  const cpu::WeightType type = cpu::WeightTypeOf(table.dtype());
  float* o = out.data_as<float>();
  const cpu::CpuKernels& kernels = cpu::Kernels();
  pool_.ParallelFor(T, RowGrain(d), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) kernels.widen_row(type, tab + id[t] * row_bytes, o + t * d, d);
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::EmbeddingShard(const Tensor& table, const Tensor& ids, int64_t first_id, const Tensor& out) {
  constexpr absl::string_view kOp = "EmbeddingShard";
  RETURN_IF_ERROR(cpu::ExpectWeight(kOp, "table", table, {"V", "d"}));
  RETURN_IF_ERROR(Expect(kOp, "ids", ids, DType::kI32, {"T"}));
  const int64_t V = table.dim(0), d = table.dim(1), T = ids.dim(0);
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {T, d}));
  if (first_id < 0) return OpError(kOp, absl::StrCat("first_id ", first_id, " is negative"));
  const int32_t* id = ids.data_as<int32_t>();
  const char* tab = static_cast<const char*>(table.data());
  const int64_t row_bytes = d * static_cast<int64_t>(DTypeSize(table.dtype()));
  const cpu::WeightType type = cpu::WeightTypeOf(table.dtype());
  float* o = out.data_as<float>();
  const cpu::CpuKernels& kernels = cpu::Kernels();
  pool_.ParallelFor(T, RowGrain(d), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t row = id[t] - first_id;
      if (row >= 0 && row < V) {
        kernels.widen_row(type, tab + row * row_bytes, o + t * d, d);
      } else {
        std::memset(o + t * d, 0, d * sizeof(float));
      }
    }
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  constexpr absl::string_view kOp = "RmsNorm";
  RETURN_IF_ERROR(Expect(kOp, "x", x, DType::kF32, {"T", "d"}));
  const int64_t T = x.dim(0), d = x.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "w", w, DType::kF32, {d}));
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {T, d}));
  const float* xp = x.data_as<float>();
  const float* wp = w.data_as<float>();
  float* op = out.data_as<float>();
  const cpu::CpuKernels& kernels = cpu::Kernels();
  pool_.ParallelFor(T, RowGrain(d), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) kernels.rms_norm_row(xp + t * d, wp, eps, d, op + t * d);
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& w, float eps,
                                    const Tensor& out) {
  constexpr absl::string_view kOp = "AddRmsNorm";
  RETURN_IF_ERROR(Expect(kOp, "x", x, DType::kF32, {"T", "d"}));
  const int64_t T = x.dim(0), d = x.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "residual", residual, DType::kF32, {T, d}));
  RETURN_IF_ERROR(Expect(kOp, "w", w, DType::kF32, {d}));
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {T, d}));
  const float* xp = x.data_as<float>();
  float* rp = residual.data_as<float>();
  const float* wp = w.data_as<float>();
  float* op = out.data_as<float>();
  const cpu::CpuKernels& kernels = cpu::Kernels();
  pool_.ParallelFor(T, RowGrain(2 * d), [&](int64_t b, int64_t e) {
    // Reads x before writing out: out may alias x.
    for (int64_t t = b; t < e; ++t) kernels.add_rms_norm_row(rp + t * d, xp + t * d, wp, eps, d, op + t * d);
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::Add(const Tensor& a, const Tensor& b, const Tensor& out) {
  constexpr absl::string_view kOp = "Add";
  if (!a.defined()) return OpError(kOp, "a is missing");
  if (a.dtype() != DType::kF32) {
    return OpError(kOp, absl::StrCat("a has dtype ", cpu::DTypeStr(a.dtype()), ", expected f32"));
  }
  for (const auto& [name, t] : {std::pair<absl::string_view, const Tensor*>{"b", &b}, {"out", &out}}) {
    if (!t->defined() || t->dtype() != DType::kF32 || t->shape() != a.shape()) {
      return OpError(
          kOp, absl::StrCat(name, " is ", t->defined() ? t->DebugString() : "missing", ", expected ", a.DebugString()));
    }
  }
  const int64_t n = a.numel();
  if (n == 0) return absl::OkStatus();
  if (a.data() == nullptr || b.data() == nullptr || out.data() == nullptr) {
    return OpError(kOp, "operand has no memory");
  }
  const float* ap = a.data_as<float>();
  const float* bp = b.data_as<float>();
  float* op = out.data_as<float>();
  pool_.ParallelFor(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) op[i] = ap[i] + bp[i];
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::Rope(const Tensor& x, const Tensor& positions, const Tensor& cos_sin, int32_t rotary_dim,
                              RopeStyle style) {
  constexpr absl::string_view kOp = "Rope";
  RETURN_IF_ERROR(Expect(kOp, "x", x, DType::kF32, {"T", "H", "D"}));
  const int64_t T = x.dim(0), H = x.dim(1), D = x.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "positions", positions, DType::kI32, {T}));
  if (rotary_dim <= 0 || rotary_dim % 2 != 0 || rotary_dim > D) {
    return OpError(kOp, absl::StrCat("rotary_dim ", rotary_dim, " must be even and in (0, ", D, "]"));
  }
  RETURN_IF_ERROR(Expect(kOp, "cos_sin", cos_sin, DType::kF32, {"max_position", rotary_dim}));
  const int64_t max_pos = cos_sin.dim(0);
  const int32_t* pos = positions.data_as<int32_t>();
  if (int64_t bad = FindOutOfRange(pos, T, max_pos); bad >= 0) {
    return OpError(kOp, absl::StrCat("positions[", bad, "] = ", pos[bad], " is outside [0, ", max_pos, ")"));
  }
  const int64_t half = rotary_dim / 2;
  const float* cs = cos_sin.data_as<float>();
  float* xp = x.data_as<float>();
  pool_.ParallelFor(T, RowGrain(H * rotary_dim * 2), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* c = cs + pos[t] * rotary_dim;
      const float* s = c + half;
      for (int64_t h = 0; h < H; ++h) {
        cpu::RotateHead(xp + (t * H + h) * D, c, s, half, style == RopeStyle::kNeox);
      }
    }
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::SiluMul(const Tensor& gate_up, const Tensor& out) {
  constexpr absl::string_view kOp = "SiluMul";
  RETURN_IF_ERROR(Expect(kOp, "gate_up", gate_up, DType::kF32, {"T", "2I"}));
  const int64_t T = gate_up.dim(0), I2 = gate_up.dim(1);
  if (I2 % 2 != 0) {
    return OpError(kOp, absl::StrCat("gate_up has shape ", gate_up.shape().ToString(),
                                     ", expected an even last dimension [T, 2I]"));
  }
  const int64_t I = I2 / 2;
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {T, I}));
  const float* g = gate_up.data_as<float>();
  float* o = out.data_as<float>();
  const cpu::CpuKernels& kernels = cpu::Kernels();
  pool_.ParallelFor(T, RowGrain(4 * I), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) kernels.silu_mul_row(g + t * I2, g + t * I2 + I, I, o + t * I);
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) {
  constexpr absl::string_view kOp = "GatherRows";
  RETURN_IF_ERROR(Expect(kOp, "x", x, DType::kF32, {"T", "d"}));
  RETURN_IF_ERROR(Expect(kOp, "indices", indices, DType::kI32, {"n"}));
  const int64_t T = x.dim(0), d = x.dim(1), n = indices.dim(0);
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {n, d}));
  const int32_t* idx = indices.data_as<int32_t>();
  if (int64_t bad = FindOutOfRange(idx, n, T); bad >= 0) {
    return OpError(kOp, absl::StrCat("indices[", bad, "] = ", idx[bad], " is outside [0, ", T, ")"));
  }
  const float* xp = x.data_as<float>();
  float* op = out.data_as<float>();
  pool_.ParallelFor(n, RowGrain(d), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(op + i * d, xp + idx[i] * d, d * sizeof(float));
  });
  return absl::OkStatus();
}

}  // namespace moeserve
