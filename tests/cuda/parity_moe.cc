// Parity cases for MoE: expert routing (every top-k method) and the expert FFNs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda/parity_harness.h"
#include "tests/cuda/parity_moe_util.h"

namespace moeserve::parity {

void MoeCases(Harness& h) {
  struct R {
    MoeTopkMethod method;
    MoeScoring scoring;
    int64_t E;
    int top_k, n_group, topk_group;
  };
  if (h.Wanted("MoeRoute")) {
    for (R r : {R{MoeTopkMethod::kGreedy, MoeScoring::kSoftmax, 8, 2, 1, 1},
                R{MoeTopkMethod::kGreedy, MoeScoring::kSoftmax, 64, 6, 1, 1},
                R{MoeTopkMethod::kGreedy, MoeScoring::kSigmoid, 128, 8, 1, 1},
                R{MoeTopkMethod::kGroupLimitedGreedy, MoeScoring::kSoftmax, 64, 6, 8, 3},
                R{MoeTopkMethod::kGroupLimitedGreedy, MoeScoring::kSoftmax, 160, 6, 8, 3},
                R{MoeTopkMethod::kNoAuxTc, MoeScoring::kSigmoid, 256, 8, 8, 4},
                R{MoeTopkMethod::kNoAuxTc, MoeScoring::kSigmoid, 8, 2, 2, 1}}) {
      for (int64_t T : {1, 100, 256}) {
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
        PARITY_CHECK_OK(
            h.cpu->MoeRoute(F32(*h.cpu, logits, {T, r.E}), use_bias ? F32(*h.cpu, bias, {r.E}) : Tensor(), p, ic, wc));
        PARITY_CHECK_OK(h.gpu->MoeRoute(F32(*h.gpu, logits, {T, r.E}),
                                        use_bias ? Weight(*h.gpu, bias, {r.E}) : Tensor(), p, ig, wg));
        std::vector<int32_t> idc(T * r.top_k), idg(T * r.top_k);
        PARITY_CHECK_OK(h.cpu->CopyToHost(ic, MutableHostBytes(idc)));
        PARITY_CHECK_OK(h.gpu->CopyToHost(ig, MutableHostBytes(idg)));
        int mismatched = 0;
        for (size_t i = 0; i < idc.size(); ++i) mismatched += idc[i] != idg[i];
        if (mismatched > 0) h.failed++;  // the weight line below still prints
        Report(h, absl::StrCat("MoeRoute method=", static_cast<int>(r.method), " E=", r.E, " k=", r.top_k, " T=", T),
               Down(*h.gpu, wg), Down(*h.cpu, wc), 1e-5, absl::StrCat(" ids_mismatched=", mismatched));
      }
    }
  }
  if (h.Wanted("MoeExperts")) {
    // S: shared experts fused into the grouped GEMMs (num_shared_experts), stacked after the E
    // routed experts; `shared` is the separate shared_out add (both may be on). valid >= 0: only
    // the first `valid` tokens are real (num_valid_tokens, a padded decode bucket): expert_counts
    // must equal the histogram of their pairs alone, the output still covers all T rows.
    struct X {
      int64_t T, E, K, d, I;
      const char* routing;
      bool shared;
      bool fp8;
      int64_t S = 0;
      int32_t valid = -1;
    };
    // routing: see RouteIds.
    for (X c :
         {X{1, 8, 2, 64, 96, "spread", false, false},           X{64, 8, 2, 128, 176, "spread", false, false},
          X{7, 64, 6, 256, 128, "spread", true, false},         X{256, 64, 6, 256, 128, "spread", false, false},
          X{256, 256, 8, 128, 64, "spread", true, false},       X{200, 64, 2, 128, 96, "two", true, false},
          X{33, 160, 6, 64, 32, "spread", false, false},        X{1, 64, 6, 256, 128, "spread", true, true},
          X{40, 8, 2, 256, 128, "spread", false, true},         X{130, 16, 4, 256, 256, "two", true, true},
          X{1, 64, 6, 256, 128, "spread", false, false, 1},     X{1, 64, 6, 256, 128, "spread", false, false, 2},
          X{100, 64, 6, 256, 128, "spread", true, false, 2},    X{256, 256, 8, 128, 64, "spread", false, false, 1},
          X{200, 64, 2, 128, 96, "two", false, false, 2},       X{33, 160, 6, 64, 32, "spread", false, false, 1},
          X{3, 16, 4, 256, 256, "spread", false, true, 1},      X{130, 8, 2, 256, 128, "two", false, true, 2},
          X{64, 8, 2, 256, 128, "spread", true, true, 1},       X{8, 64, 6, 256, 128, "spread", false, false, 0, 5},
          X{24, 64, 6, 256, 128, "spread", true, false, 2, 17}, X{16, 16, 4, 256, 256, "spread", false, true, 1, 9},
          X{4, 8, 2, 64, 96, "spread", false, false, 0, 0}}) {
      const auto [T, E, K, d, I, routing, shared, fp8, S, valid] = c;
      const int64_t ES = E + S;  // stacked experts: routed, then the fused shared ones
      auto x = h.Rand(T * d), wts = h.Rand(T * K, 0.0f, 1.0f), sh = h.Rand(T * d);
      const std::vector<int32_t> ids = RouteIds(h, routing, T, K, E);
      Tensor gu_c, dn_c, gu_g, dn_g;
      if (fp8) {
        const Fp8Experts w = RandFp8Experts(h, ES, d, I);
        gu_c = w.GateUpOn(*h.cpu);
        dn_c = w.DownOn(*h.cpu);
        gu_g = w.GateUpOn(*h.gpu);
        dn_g = w.DownOn(*h.gpu);
        if (gu_g.dtype() != DType::kF8E4M3) h.failed++;  // the CUDA backend must keep fp8 here
      } else {
        auto gu = h.Rand(ES * 2 * I * d, -0.1f, 0.1f), dn = h.Rand(ES * d * I, -0.1f, 0.1f);
        gu_c = Weight(*h.cpu, gu, {ES, 2 * I, d});
        dn_c = Weight(*h.cpu, dn, {ES, d, I});
        gu_g = Weight(*h.gpu, gu, {ES, 2 * I, d});
        dn_g = Weight(*h.gpu, dn, {ES, d, I});
      }
      const MoeExpertsInputs in{.T = T,
                                .E = E,
                                .K = K,
                                .d = d,
                                .S = S,
                                .valid = valid,
                                .x = x,
                                .ids = ids,
                                .weights = wts,
                                .shared = shared ? &sh : nullptr};
      const MoeExpertsResult rc = RunMoeExperts(*h.cpu, in, gu_c, dn_c), rg = RunMoeExperts(*h.gpu, in, gu_g, dn_g);
      std::vector<int64_t> want(E, 0);  // the real tokens' routed pairs
      for (int64_t i = 0; i < (valid >= 0 ? valid : T) * K; ++i) ++want[ids[i]];
      const bool counts_ok = rc.counts == rg.counts && rc.counts == want;
      if (!counts_ok) h.failed++;  // the output line below still prints
      Report(h,
             absl::StrCat(fp8 ? "MoeExpertsFp8" : "MoeExperts", " T=", T, " E=", E, " k=", K, " d=", d, " I=", I,
                          " routing=", routing, shared ? " +shared" : "", S > 0 ? absl::StrCat(" S=", S) : "",
                          valid >= 0 ? absl::StrCat(" valid=", valid) : ""),
             rg.out, rc.out, fp8 ? 3e-2 : kBf16Bound, counts_ok ? " counts=ok" : " counts=MISMATCH");
    }
    // Expert parallelism: each of N ranks holds E / N of the routed experts (bf16 and fp8); pairs
    // routed elsewhere are skipped and not counted.
    for (auto [T, E, K, d, I, N, fp8] :
         {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>{64, 64, 6, 256, 128, 4, false},
          {5, 16, 4, 256, 256, 2, true},
          {130, 8, 2, 128, 96, 8, false}}) {
      const int64_t El = E / N;
      auto x = h.Rand(T * d), wts = h.Rand(T * K, 0.0f, 1.0f);
      const std::vector<int32_t> ids = RouteIds(h, "spread", T, K, E);
      for (int64_t r = 0; r < N; r += std::max<int64_t>(N - 1, 1)) {  // the first and last slices
        Tensor gu_c, dn_c, gu_g, dn_g;
        if (fp8) {
          const Fp8Experts w = RandFp8Experts(h, El, d, I);
          gu_c = w.GateUpOn(*h.cpu), dn_c = w.DownOn(*h.cpu), gu_g = w.GateUpOn(*h.gpu), dn_g = w.DownOn(*h.gpu);
        } else {
          auto gu = h.Rand(El * 2 * I * d, -0.1f, 0.1f), dn = h.Rand(El * d * I, -0.1f, 0.1f);
          gu_c = Weight(*h.cpu, gu, {El, 2 * I, d}), dn_c = Weight(*h.cpu, dn, {El, d, I});
          gu_g = Weight(*h.gpu, gu, {El, 2 * I, d}), dn_g = Weight(*h.gpu, dn, {El, d, I});
        }
        const MoeExpertsInputs in{
            .T = T, .E = El, .K = K, .d = d, .first = r * El, .total = E, .x = x, .ids = ids, .weights = wts};
        const MoeExpertsResult rc = RunMoeExperts(*h.cpu, in, gu_c, dn_c), rg = RunMoeExperts(*h.gpu, in, gu_g, dn_g);
        std::vector<int64_t> want(El, 0);
        for (int32_t e : ids) {
          if (e >= r * El && e < (r + 1) * El) ++want[e - r * El];
        }
        const bool counts_ok = rc.counts == rg.counts && rc.counts == want;
        if (!counts_ok) h.failed++;
        Report(h,
               absl::StrCat(fp8 ? "MoeExpertsFp8" : "MoeExperts", " expert-parallel T=", T, " E=", E, " slice ", r, "/",
                            N, " k=", K, " d=", d, " I=", I),
               rg.out, rc.out, fp8 ? 3e-2 : kBf16Bound, counts_ok ? " counts=ok" : " counts=MISMATCH");
      }
    }
  }
}

}  // namespace moeserve::parity
