// Parity cases for MoE: expert routing (every top-k method) and the expert FFNs.

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda/parity_harness.h"

namespace moeserve::parity {

void MoeCases(Harness& h) {
  struct R { MoeTopkMethod method; MoeScoring scoring; int64_t E; int top_k, n_group, topk_group; };
  if (h.Wanted("MoeRoute")) {
    for (R r : {R{MoeTopkMethod::kGreedy, MoeScoring::kSoftmax, 8, 2, 1, 1},
                R{MoeTopkMethod::kGreedy, MoeScoring::kSoftmax, 64, 6, 1, 1},
                R{MoeTopkMethod::kGroupLimitedGreedy, MoeScoring::kSoftmax, 160, 6, 8, 3},
                R{MoeTopkMethod::kNoAuxTc, MoeScoring::kSigmoid, 256, 8, 8, 4},
                R{MoeTopkMethod::kNoAuxTc, MoeScoring::kSigmoid, 8, 2, 2, 1}}) {
      for (int64_t T : {1, 100}) {
        MoeRoutingParams p;
        p.method = r.method;
        p.scoring = r.scoring;
        p.top_k = r.top_k;
        p.n_group = r.n_group;
        p.topk_group = r.topk_group;
        p.norm_topk_prob = r.method != MoeTopkMethod::kGroupLimitedGreedy;
        p.routed_scaling_factor = r.method == MoeTopkMethod::kNoAuxTc ? 2.5f : 1.0f;
        auto logits = h.Rand(T * r.E, -4.0f, 4.0f), bias = h.Rand(r.E, -0.1f, 0.1f);
        const bool use_bias = r.method == MoeTopkMethod::kNoAuxTc;
        Tensor ic = Out(*h.cpu, {T, r.top_k}, DType::kI32), wc = Out(*h.cpu, {T, r.top_k}, DType::kF32);
        Tensor ig = Out(*h.gpu, {T, r.top_k}, DType::kI32), wg = Out(*h.gpu, {T, r.top_k}, DType::kF32);
        PARITY_CHECK_OK(h.cpu->MoeRoute(F32(*h.cpu, logits, {T, r.E}), use_bias ? F32(*h.cpu, bias, {r.E}) : Tensor(), p, ic, wc));
        PARITY_CHECK_OK(h.gpu->MoeRoute(F32(*h.gpu, logits, {T, r.E}), use_bias ? Weight(*h.gpu, bias, {r.E}) : Tensor(), p, ig, wg));
        std::vector<int32_t> idc(T * r.top_k), idg(T * r.top_k);
        PARITY_CHECK_OK(h.cpu->CopyToHost(ic, {reinterpret_cast<uint8_t*>(idc.data()), idc.size() * 4}));
        PARITY_CHECK_OK(h.gpu->CopyToHost(ig, {reinterpret_cast<uint8_t*>(idg.data()), idg.size() * 4}));
        int mismatched = 0;
        for (size_t i = 0; i < idc.size(); ++i) mismatched += idc[i] != idg[i];
        if (mismatched > 0) h.failed++;  // the weight line below still prints
        Report(h, absl::StrCat("MoeRoute method=", static_cast<int>(r.method), " E=", r.E, " k=", r.top_k, " T=", T),
               Down(*h.gpu, wg), Down(*h.cpu, wc), 1e-5, absl::StrCat(" ids_mismatched=", mismatched));
      }
    }
  }
  if (h.Wanted("MoeExperts")) {
    for (auto [T, E, K, d, I] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{1, 8, 2, 64, 96},
                                 {64, 8, 2, 128, 176}, {256, 64, 6, 256, 128}}) {
      auto x = h.Rand(T * d), gu = h.Rand(E * 2 * I * d, -0.1f, 0.1f), dn = h.Rand(E * d * I, -0.1f, 0.1f);
      auto wts = h.Rand(T * K, 0.0f, 1.0f);
      std::vector<int32_t> ids(T * K);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t k = 0; k < K; ++k) ids[t * K + k] = static_cast<int32_t>((t * 7 + k * 3 + h.rng() % 2) % E);
      }
      Tensor oc = Out(*h.cpu, {T, d}, DType::kF32), og = Out(*h.gpu, {T, d}, DType::kBF16);
      PARITY_CHECK_OK(h.cpu->MoeExperts(Act(*h.cpu, x, {T, d}), I32(*h.cpu, ids, {T, K}), F32(*h.cpu, wts, {T, K}),
                                 Weight(*h.cpu, gu, {E, 2 * I, d}), Weight(*h.cpu, dn, {E, d, I}), oc, {}));
      PARITY_CHECK_OK(h.gpu->MoeExperts(Act(*h.gpu, x, {T, d}), I32(*h.gpu, ids, {T, K}), F32(*h.gpu, wts, {T, K}),
                                 Weight(*h.gpu, gu, {E, 2 * I, d}), Weight(*h.gpu, dn, {E, d, I}), og, {}));
      Report(h, absl::StrCat("MoeExperts T=", T, " E=", E, " k=", K, " d=", d, " I=", I),
             Down(*h.gpu, og), Down(*h.cpu, oc), kBf16Bound);
    }
  }
}

}  // namespace moeserve::parity
