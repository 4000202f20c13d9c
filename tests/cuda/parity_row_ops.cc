// Parity cases for the row ops: norms, residual add, SiLU-and-mul, gathers, RoPE, GEMMs.

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda/parity_harness.h"

namespace moeserve::parity {

static void RowOps(Harness& h) {
  for (int64_t T : {1, 3, 256}) {
    for (int64_t d : {5, 64, 1000, 4096}) {
      const std::string shape = absl::StrCat("T=", T, " d=", d);
      auto x = h.Rand(T * d), r = h.Rand(T * d), w = h.Rand(d, 0.5f, 1.5f);
      if (h.Wanted("RmsNorm")) {
        Tensor oc = Out(*h.cpu, {T, d}, DType::kF32), og = Out(*h.gpu, {T, d}, DType::kBF16);
        PARITY_CHECK_OK(h.cpu->RmsNorm(Act(*h.cpu, x, {T, d}), Weight(*h.cpu, w, {d}), 1e-5f, oc));
        PARITY_CHECK_OK(h.gpu->RmsNorm(Act(*h.gpu, x, {T, d}), Weight(*h.gpu, w, {d}), 1e-5f, og));
        Report(h, "RmsNorm " + shape, Down(*h.gpu, og), Down(*h.cpu, oc), kBf16Bound);
      }
      if (h.Wanted("AddRmsNorm")) {
        Tensor rc = Act(*h.cpu, r, {T, d}), rg = Act(*h.gpu, r, {T, d});
        Tensor oc = Out(*h.cpu, {T, d}, DType::kF32), og = Out(*h.gpu, {T, d}, DType::kBF16);
        PARITY_CHECK_OK(h.cpu->AddRmsNorm(Act(*h.cpu, x, {T, d}), rc, Weight(*h.cpu, w, {d}), 1e-5f, oc));
        PARITY_CHECK_OK(h.gpu->AddRmsNorm(Act(*h.gpu, x, {T, d}), rg, Weight(*h.gpu, w, {d}), 1e-5f, og));
        Report(h, "AddRmsNorm out " + shape, Down(*h.gpu, og), Down(*h.cpu, oc), kBf16Bound);
        Report(h, "AddRmsNorm residual " + shape, Down(*h.gpu, rg), Down(*h.cpu, rc), kBf16Bound);
      }
      if (h.Wanted("Add")) {
        Tensor oc = Out(*h.cpu, {T, d}, DType::kF32), og = Out(*h.gpu, {T, d}, DType::kBF16);
        PARITY_CHECK_OK(h.cpu->Add(Act(*h.cpu, x, {T, d}), Act(*h.cpu, r, {T, d}), oc));
        PARITY_CHECK_OK(h.gpu->Add(Act(*h.gpu, x, {T, d}), Act(*h.gpu, r, {T, d}), og));
        Report(h, "Add " + shape, Down(*h.gpu, og), Down(*h.cpu, oc), kBf16Bound);
      }
      if (h.Wanted("SiluMul") && d % 2 == 0) {
        Tensor oc = Out(*h.cpu, {T, d / 2}, DType::kF32), og = Out(*h.gpu, {T, d / 2}, DType::kBF16);
        PARITY_CHECK_OK(h.cpu->SiluMul(Act(*h.cpu, x, {T, d}), oc));
        PARITY_CHECK_OK(h.gpu->SiluMul(Act(*h.gpu, x, {T, d}), og));
        Report(h, "SiluMul " + shape, Down(*h.gpu, og), Down(*h.cpu, oc), kBf16Bound);
      }
      if (h.Wanted("GatherRows") || h.Wanted("Embedding")) {
        const int64_t n = T + 2;
        std::vector<int32_t> idx(n);
        for (auto& i : idx) i = static_cast<int32_t>(h.rng() % T);
        Tensor oc = Out(*h.cpu, {n, d}, DType::kF32), og = Out(*h.gpu, {n, d}, DType::kBF16);
        PARITY_CHECK_OK(h.cpu->GatherRows(Act(*h.cpu, x, {T, d}), I32(*h.cpu, idx, {n}), oc));
        PARITY_CHECK_OK(h.gpu->GatherRows(Act(*h.gpu, x, {T, d}), I32(*h.gpu, idx, {n}), og));
        Report(h, "GatherRows " + shape, Down(*h.gpu, og), Down(*h.cpu, oc), 1e-6);
        Tensor ec = Out(*h.cpu, {n, d}, DType::kF32), eg = Out(*h.gpu, {n, d}, DType::kBF16);
        PARITY_CHECK_OK(h.cpu->Embedding(Weight(*h.cpu, x, {T, d}), I32(*h.cpu, idx, {n}), ec));
        PARITY_CHECK_OK(h.gpu->Embedding(Weight(*h.gpu, x, {T, d}), I32(*h.gpu, idx, {n}), eg));
        Report(h, "Embedding " + shape, Down(*h.gpu, eg), Down(*h.cpu, ec), 1e-6);
        // A vocabulary slice [T/3, T/3 + T/2) of the same ids: rows outside it are zeros.
        const int64_t first = T / 3, rows = std::max<int64_t>(T / 2, 1);
        std::vector<float> slice(x.begin() + first * d, x.begin() + (first + rows) * d);
        Tensor sc = Out(*h.cpu, {n, d}, DType::kF32), sg = Out(*h.gpu, {n, d}, DType::kBF16);
        PARITY_CHECK_OK(h.cpu->EmbeddingShard(Weight(*h.cpu, slice, {rows, d}), I32(*h.cpu, idx, {n}), first, sc));
        PARITY_CHECK_OK(h.gpu->EmbeddingShard(Weight(*h.gpu, slice, {rows, d}), I32(*h.gpu, idx, {n}), first, sg));
        Report(h, "EmbeddingShard " + shape, Down(*h.gpu, sg), Down(*h.cpu, sc), 1e-6);
      }
    }
  }
}

static void RopeCases(Harness& h) {
  if (!h.Wanted("Rope")) return;
  const int64_t max_pos = 4096;
  for (auto style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
    for (int64_t D : {16, 64, 128}) {
      for (int64_t rot : {D, D / 2}) {
        for (int64_t T : {1, 37}) {
          const int64_t H = 8;
          std::vector<float> cs(max_pos * rot);
          for (int64_t p = 0; p < max_pos; ++p) {
            for (int64_t i = 0; i < rot / 2; ++i) {
              const double a = p * std::pow(10000.0, -2.0 * i / rot);
              cs[p * rot + i] = static_cast<float>(std::cos(a));
              cs[p * rot + rot / 2 + i] = static_cast<float>(std::sin(a));
            }
          }
          std::vector<int32_t> pos(T);
          for (auto& p : pos) p = static_cast<int32_t>(h.rng() % max_pos);
          auto x = h.Rand(T * H * D);
          Tensor xc = Act(*h.cpu, x, {T, H, D}), xg = Act(*h.gpu, x, {T, H, D});
          PARITY_CHECK_OK(h.cpu->Rope(xc, I32(*h.cpu, pos, {T}), F32(*h.cpu, cs, {max_pos, rot}), rot, style));
          PARITY_CHECK_OK(h.gpu->Rope(xg, I32(*h.gpu, pos, {T}), F32(*h.gpu, cs, {max_pos, rot}), rot, style));
          Report(h,
                 absl::StrCat("Rope ", style == RopeStyle::kNeox ? "neox" : "interleaved", " T=", T, " H=", H, " D=", D,
                              " rot=", rot),
                 Down(*h.gpu, xg), Down(*h.cpu, xc), kBf16Bound);
        }
      }
    }
  }
}

static void GemmCases(Harness& h) {
  struct Shape3 {
    int64_t t, in, out;
  };
  if (h.Wanted("Linear")) {
    for (Shape3 s : {Shape3{1, 64, 64}, {7, 100, 37}, {33, 256, 513}, {256, 4096, 1024}, {1, 4096, 14336}}) {
      for (bool bias : {false, true}) {
        for (DType od : {DType::kBF16, DType::kF32}) {
          if (od == DType::kF32 && bias) continue;
          auto x = h.Rand(s.t * s.in), w = h.Rand(s.out * s.in, -0.1f, 0.1f), b = h.Rand(s.out);
          Tensor oc = Out(*h.cpu, {s.t, s.out}, DType::kF32), og = Out(*h.gpu, {s.t, s.out}, od);
          PARITY_CHECK_OK(h.cpu->Linear(Act(*h.cpu, x, {s.t, s.in}), Weight(*h.cpu, w, {s.out, s.in}),
                                        bias ? Weight(*h.cpu, b, {s.out}) : Tensor(), oc));
          PARITY_CHECK_OK(h.gpu->Linear(Act(*h.gpu, x, {s.t, s.in}), Weight(*h.gpu, w, {s.out, s.in}),
                                        bias ? Weight(*h.gpu, b, {s.out}) : Tensor(), og));
          Report(h,
                 absl::StrCat("Linear T=", s.t, " in=", s.in, " out=", s.out, bias ? " +bias" : "",
                              od == DType::kF32 ? " ->f32" : ""),
                 Down(*h.gpu, og), Down(*h.cpu, oc), kBf16Bound);
        }
      }
    }
  }
  if (h.Wanted("HeadwiseLinear")) {
    for (Shape3 s : {Shape3{1, 16, 32}, {5, 128, 512}, {64, 512, 128}}) {
      const int64_t H = 16;
      auto x = h.Rand(s.t * H * s.in), w = h.Rand(H * s.out * s.in, -0.1f, 0.1f);
      Tensor oc = Out(*h.cpu, {s.t, H, s.out}, DType::kF32), og = Out(*h.gpu, {s.t, H, s.out}, DType::kBF16);
      PARITY_CHECK_OK(h.cpu->HeadwiseLinear(Act(*h.cpu, x, {s.t, H, s.in}), Weight(*h.cpu, w, {H, s.out, s.in}), oc));
      PARITY_CHECK_OK(h.gpu->HeadwiseLinear(Act(*h.gpu, x, {s.t, H, s.in}), Weight(*h.gpu, w, {H, s.out, s.in}), og));
      Report(h, absl::StrCat("HeadwiseLinear T=", s.t, " H=", H, " in=", s.in, " out=", s.out), Down(*h.gpu, og),
             Down(*h.cpu, oc), kBf16Bound);
    }
  }
}

void RowOpCases(Harness& h) {
  RowOps(h);
  RopeCases(h);
  GemmCases(h);
}

}  // namespace moeserve::parity
