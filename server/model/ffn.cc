#include "server/model/ffn.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/moe_dispatch.h"
#include "server/model/parallel.h"
#include "server/model/shared_experts.h"

namespace moeserve {
namespace {

// The routed experts' 16-bit weights (stored as `dtype`) and the n_shared shared experts, split,
// stacked on the backend into gate_up [E + S, 2I, d] and down [E + S, d, I]. Each routed expert
// goes from the mapped file straight into its slot: one copy (one upload on a device), no host
// staging of the stack.
absl::Status StackExperts16(WeightLoader& loader, DType dtype, const MoeTensors& t, int64_t n_shared, int64_t i_size,
                            int64_t d, Tensor* gate_up, Tensor* down) {
  Backend* backend = loader.backend();
  const int64_t e_count = static_cast<int64_t>(t.experts.size());
  const int64_t stacked = e_count + n_shared;
  ASSIGN_OR_RETURN(*gate_up, backend->Allocate(dtype, {stacked, 2 * i_size, d}));
  ASSIGN_OR_RETURN(*down, backend->Allocate(dtype, {stacked, d, i_size}));
  const Tensor halves = gate_up->View(Shape({2 * stacked, i_size, d}));  // gate, up of each expert
  auto copy = [&](const WeightSpec& w, const Tensor& slot) {
    return loader.CopyInto(loader.Name(w), w.shape, dtype, slot);
  };
  for (int64_t e = 0; e < e_count; ++e) {
    const MlpTensors& x = t.experts[static_cast<size_t>(e)];
    RETURN_IF_ERROR(copy(x.gate, halves.Slice(2 * e, 1)));
    RETURN_IF_ERROR(copy(x.up, halves.Slice(2 * e + 1, 1)));
    RETURN_IF_ERROR(copy(x.down, down->Slice(e, 1)));
  }
  if (n_shared > 0) {
    auto host = [&](const WeightSpec& w) { return loader.Host16(loader.Name(w), w.shape, dtype); };
    ASSIGN_OR_RETURN(std::vector<uint16_t> gate, host(t.shared->gate));
    ASSIGN_OR_RETURN(std::vector<uint16_t> up, host(t.shared->up));
    ASSIGN_OR_RETURN(std::vector<uint16_t> dn, host(t.shared->down));
    std::vector<uint16_t> shared_gate_up, shared_down;
    AppendSharedExperts(gate, up, dn, n_shared, i_size, d, &shared_gate_up, &shared_down);
    RETURN_IF_ERROR(backend->CopyFromHost(HostBytes(shared_gate_up), gate_up->Slice(e_count, n_shared)));
    RETURN_IF_ERROR(backend->CopyFromHost(HostBytes(shared_down), down->Slice(e_count, n_shared)));
  }
  loader.Track(*gate_up);
  loader.Track(*down);
  return absl::OkStatus();
}

// This rank's channels [xr] of the shared MLP (intermediate n · I) as n more experts of host
// values, of intermediate xr.count / n each (per-channel split: the experts' outputs still sum to
// the slice's).
absl::Status AppendSharedExpertsHost(const WeightLoader& loader, const MlpTensors& shared, int64_t n, Range xr,
                                     int64_t d, std::vector<float>* gate_up, std::vector<float>* down) {
  ASSIGN_OR_RETURN(std::vector<float> gate, HostSlice(loader, shared.gate, 0, xr));
  ASSIGN_OR_RETURN(std::vector<float> up, HostSlice(loader, shared.up, 0, xr));
  ASSIGN_OR_RETURN(std::vector<float> dn, HostSlice(loader, shared.down, 1, xr));
  AppendSharedExperts(gate, up, dn, n, xr.count / n, d, gate_up, down);
  return absl::OkStatus();
}

}  // namespace

// DeepSeek-V3 fp8 experts: the e4m3 bytes and 128×128 block scales of this rank's experts (their
// channels `ir`), stacked, go to the backend as they are (CreateFp8BlockWeight: the CUDA backend
// keeps fp8, the CPU backend dequantizes). False when the experts are stored otherwise, or when
// gate and up would not stack on whole scale blocks (the rank's intermediate or the hidden size not
// a multiple of 128). The n_shared shared experts (this rank's channels `xr` of the shared MLP) are
// stacked after the routed ones (num_shared_fused_) when fuse_shared and they are fp8 blocks too;
// otherwise they are left to the caller.
absl::StatusOr<bool> MoeFfn::LoadFp8Experts(WeightLoader& loader, const MoeTensors& t, int64_t d, Range er, Range ir,
                                            int64_t n_shared, Range xr, bool fuse_shared, MoeFfn* moe) {
  if (ir.count % 128 != 0 || d % 128 != 0) return false;
  std::vector<uint8_t> gu_bytes, dn_bytes;
  std::vector<float> gu_scales, dn_scales;
  for (int64_t e = er.begin; e < er.end(); ++e) {
    const MlpTensors& x = t.experts[e];
    for (const WeightSpec* w : {&x.gate, &x.up}) {
      ASSIGN_OR_RETURN(bool ok, HostFp8BlockSlice(loader, loader.Name(*w), w->shape, 0, ir, &gu_bytes, &gu_scales));
      if (!ok) return false;
    }
    ASSIGN_OR_RETURN(bool ok,
                     HostFp8BlockSlice(loader, loader.Name(x.down), x.down.shape, 1, ir, &dn_bytes, &dn_scales));
    if (!ok) return false;
  }
  int64_t fused = 0;
  if (fuse_shared && t.shared) {
    std::vector<uint8_t> b[3];
    std::vector<float> sc[3];
    bool ok = true;
    int j = 0;
    for (const WeightSpec* w : {&t.shared->gate, &t.shared->up, &t.shared->down}) {
      ASSIGN_OR_RETURN(bool got,
                       HostFp8BlockSlice(loader, loader.Name(*w), w->shape, j == 2 ? 1 : 0, xr, &b[j], &sc[j]));
      ok = ok && got;
      ++j;
    }
    if (ok) {
      AppendSharedExperts(b[0], b[1], b[2], n_shared, ir.count, d, &gu_bytes, &dn_bytes);
      AppendSharedExperts(sc[0], sc[1], sc[2], n_shared, ir.count / 128, d / 128, &gu_scales, &dn_scales);
      fused = n_shared;
    }
  }
  const int64_t stacked = er.count + fused;
  Backend* backend = loader.backend();
  ASSIGN_OR_RETURN(moe->gate_up_, backend->CreateFp8BlockWeight(gu_bytes, gu_scales, {stacked, 2 * ir.count, d}));
  ASSIGN_OR_RETURN(moe->down_, backend->CreateFp8BlockWeight(dn_bytes, dn_scales, {stacked, d, ir.count}));
  loader.Track(moe->gate_up_);
  loader.Track(moe->down_);
  moe->num_shared_fused_ = fused;
  return true;
}

absl::StatusOr<DenseMlp> DenseMlp::Load(WeightLoader& loader, const MlpTensors& t, bool replicated) {
  DenseMlp mlp;
  const int64_t intermediate = t.gate.shape[0], hidden = t.gate.shape[1];
  if (!loader.parallel().sharded() || replicated) {
    mlp.intermediate_ = intermediate;
    ASSIGN_OR_RETURN(mlp.gate_up_, loader.LoadConcatRows({loader.Name(t.gate), loader.Name(t.up)},
                                                         {intermediate, t.up.shape[0]}, hidden));
    ASSIGN_OR_RETURN(mlp.down_, loader.Load(t.down));
    return mlp;
  }
  // Tensor parallelism: this rank's channels of the intermediate (gate/up rows, down columns).
  ASSIGN_OR_RETURN(const Range ir, loader.parallel().Share(intermediate, "the MLP's intermediate size"));
  mlp.intermediate_ = ir.count;
  ASSIGN_OR_RETURN(std::vector<float> gate_up, HostSlice(loader, t.gate, 0, ir));
  ASSIGN_OR_RETURN(std::vector<float> up, HostSlice(loader, t.up, 0, ir));
  gate_up.insert(gate_up.end(), up.begin(), up.end());
  ASSIGN_OR_RETURN(mlp.gate_up_, loader.Upload(gate_up, {2 * ir.count, hidden}));
  ASSIGN_OR_RETURN(mlp.down_, LoadSlice(loader, t.down, 1, ir));
  return mlp;
}

absl::Status DenseMlp::Forward(Backend* backend, const Tensor& x, const Tensor& out) const {
  const int64_t t = x.dim(0);
  ASSIGN_OR_RETURN(Tensor gate_up, backend->Allocate(backend->activation_dtype(), {t, 2 * intermediate_}));
  ASSIGN_OR_RETURN(Tensor act, backend->Allocate(backend->activation_dtype(), {t, intermediate_}));
  RETURN_IF_ERROR(backend->Linear(x, gate_up_, Tensor(), gate_up));
  RETURN_IF_ERROR(backend->SiluMul(gate_up, act));
  return backend->Linear(act, down_, Tensor(), out);
}

absl::StatusOr<MoeFfn> MoeFfn::Load(WeightLoader& loader, const MoeTensors& t, const ModelConfig& config) {
  MoeFfn moe;
  const int64_t e_count = config.num_experts;
  const int64_t d = config.hidden_size;
  const int64_t i_size = config.moe_intermediate_size;
  moe.routing_ = config.routing;
  moe.num_experts_ = e_count;
  if (static_cast<int64_t>(t.experts.size()) != e_count) {
    return absl::InternalError(absl::StrCat("MoeFfn: ", t.experts.size(), " expert tensors for ", e_count, " experts"));
  }
  // Tensor parallelism (parallel.h): this rank's experts `er` (expert parallelism: whole experts)
  // and channels `ir` of each (without: every expert, a share of its channels). Routing is
  // replicated, so every rank chooses the same experts.
  const ModelParallel& parallel = loader.parallel();
  Range er{0, e_count}, ir{0, i_size};
  if (parallel.expert_parallel()) {
    ASSIGN_OR_RETURN(er, parallel.Share(e_count, "the number of routed experts"));
  } else {
    ASSIGN_OR_RETURN(ir, parallel.Share(i_size, "moe_intermediate_size"));
  }
  moe.first_expert_ = er.begin;
  moe.intermediate_ = ir.count;
  ASSIGN_OR_RETURN(moe.router_, loader.Load(t.router));
  if (t.correction_bias) {
    ASSIGN_OR_RETURN(moe.correction_bias_, loader.Load(*t.correction_bias));
  }

  // Shared experts (DeepSeek: one MLP of intermediate n_shared · I), split over the ranks by
  // channels like a dense MLP, are fused into the expert stack where their share per expert equals
  // the routed experts' (see num_shared_fused_; not with expert parallelism), else kept as a
  // DenseMlp. With the all-to-all dispatch each rank holds them whole and runs them on its own
  // tokens (its slice of the step's tokens: the same work as a channel slice of every token).
  const int64_t n_shared = t.shared ? config.n_shared_experts : 0;
  Range xr{0, n_shared * i_size};
  if (n_shared > 0 && !parallel.ep_all_to_all()) {
    ASSIGN_OR_RETURN(xr, parallel.Share(t.shared->gate.shape[0], "the shared experts' intermediate size"));
  }
  const bool fuse_shared = n_shared > 0 && xr.count == n_shared * ir.count && !parallel.ep_all_to_all();
  const bool fused_layout =
      t.fused_gate_up && t.fused_down && !loader.Has(t.experts[0].gate) && loader.Has(*t.fused_gate_up);
  if (fused_layout && n_shared == 0 && !parallel.sharded()) {
    ASSIGN_OR_RETURN(moe.gate_up_, loader.Load(*t.fused_gate_up));
    ASSIGN_OR_RETURN(moe.down_, loader.Load(*t.fused_down));
  } else if (absl::StatusOr<bool> fp8 =
                 fused_layout ? false : LoadFp8Experts(loader, t, d, er, ir, n_shared, xr, fuse_shared, &moe);
             !fp8.ok() || *fp8) {
    if (!fp8.ok()) return fp8.status();
  } else if (const DType dtype = loader.weight_dtype(); dtype != DType::kF32 && !fused_layout && !parallel.sharded()) {
    // 16-bit checkpoints on one rank: stack the stored bits (never an fp32 copy of every expert).
    // A rank's share goes through fp32 slices below, narrowed back to the stored dtype by Upload.
    RETURN_IF_ERROR(StackExperts16(loader, dtype, t, n_shared, i_size, d, &moe.gate_up_, &moe.down_));
    moe.num_shared_fused_ = n_shared;
  } else {
    std::vector<float> gate_up, down;
    if (fused_layout) {
      // [E, 2I, d] and [E, d, I]: this rank's experts, or the gate and up rows of its channels.
      if (parallel.expert_parallel()) {
        ASSIGN_OR_RETURN(gate_up, HostSlice(loader, *t.fused_gate_up, 0, er));
        ASSIGN_OR_RETURN(down, HostSlice(loader, *t.fused_down, 0, er));
      } else {
        ASSIGN_OR_RETURN(std::vector<float> gate, HostSlice(loader, *t.fused_gate_up, 1, ir));
        ASSIGN_OR_RETURN(std::vector<float> up, HostSlice(loader, *t.fused_gate_up, 1, {i_size + ir.begin, ir.count}));
        const int64_t per = ir.count * d;
        for (int64_t e = 0; e < e_count; ++e) {
          gate_up.insert(gate_up.end(), gate.begin() + e * per, gate.begin() + (e + 1) * per);
          gate_up.insert(gate_up.end(), up.begin() + e * per, up.begin() + (e + 1) * per);
        }
        ASSIGN_OR_RETURN(down, HostSlice(loader, *t.fused_down, 2, ir));
      }
    } else {
      gate_up.reserve(static_cast<size_t>((er.count + n_shared) * 2 * ir.count * d));
      down.reserve(static_cast<size_t>((er.count + n_shared) * d * ir.count));
      for (int64_t e = er.begin; e < er.end(); ++e) {
        for (const WeightSpec* w : {&t.experts[e].gate, &t.experts[e].up}) {
          ASSIGN_OR_RETURN(std::vector<float> values, HostSlice(loader, *w, 0, ir));
          gate_up.insert(gate_up.end(), values.begin(), values.end());
        }
        ASSIGN_OR_RETURN(std::vector<float> values, HostSlice(loader, t.experts[e].down, 1, ir));
        down.insert(down.end(), values.begin(), values.end());
      }
    }
    if (fuse_shared) {
      RETURN_IF_ERROR(AppendSharedExpertsHost(loader, *t.shared, n_shared, xr, d, &gate_up, &down));
      moe.num_shared_fused_ = n_shared;
    }
    const int64_t stacked = er.count + moe.num_shared_fused_;
    ASSIGN_OR_RETURN(moe.gate_up_, loader.Upload(gate_up, {stacked, 2 * ir.count, d}));
    ASSIGN_OR_RETURN(moe.down_, loader.Upload(down, {stacked, d, ir.count}));
  }
  ASSIGN_OR_RETURN(moe.expert_counts_, loader.backend()->Allocate(DType::kI64, {e_count}));
  RETURN_IF_ERROR(loader.backend()->Zero(moe.expert_counts_));
  if (n_shared > moe.num_shared_fused_) {
    ASSIGN_OR_RETURN(DenseMlp shared, DenseMlp::Load(loader, *t.shared, parallel.ep_all_to_all()));
    moe.shared_ = std::move(shared);
  }
  moe.local_experts_ = er.count;
  return moe;
}

absl::Status MoeFfn::Route(Backend* backend, const Tensor& x, Tensor* ids, Tensor* weights) const {
  const int64_t t = x.dim(0);
  const int64_t k = routing_.top_k;
  ASSIGN_OR_RETURN(Tensor logits, backend->Allocate(DType::kF32, {t, num_experts_}));
  ASSIGN_OR_RETURN(*ids, backend->Allocate(DType::kI32, {t, k}));
  ASSIGN_OR_RETURN(*weights, backend->Allocate(DType::kF32, {t, k}));
  RETURN_IF_ERROR(backend->Linear(x, router_, Tensor(), logits));
  return backend->MoeRoute(logits, correction_bias_, routing_, *ids, *weights);
}

absl::Status MoeFfn::Forward(Backend* backend, const Tensor& x, const Tensor& out,
                             const Tensor& num_valid_tokens) const {
  Tensor ids, weights;
  RETURN_IF_ERROR(Route(backend, x, &ids, &weights));
  MoeExpertsExtras extras;
  // This rank's experts count into their slots of the [E] counters (expert parallelism: the
  // other ranks' slots stay 0 here).
  extras.expert_counts = expert_counts_.Slice(first_expert_, local_experts_);
  extras.num_shared_experts = num_shared_fused_;
  if (local_experts_ < num_experts_) {
    extras.first_expert = first_expert_;
    extras.num_routed_experts = num_experts_;
  }
  extras.num_valid_tokens = num_valid_tokens;
  if (shared_) {
    // The shared experts write `out`; the routed experts' combine adds onto it.
    RETURN_IF_ERROR(shared_->Forward(backend, x, out));
    extras.shared_out = out;
  }
  return backend->MoeExperts(x, ids, weights, gate_up_, down_, out, extras);
}

absl::Status MoeFfn::ForwardOwnTokens(Backend* backend, const ModelParallel& parallel, const Tensor& x,
                                      int64_t valid_rows, const Tensor& out) const {
  Tensor ids, weights;
  RETURN_IF_ERROR(Route(backend, x, &ids, &weights));
  if (shared_) {
    RETURN_IF_ERROR(shared_->Forward(backend, x, out));
  } else {
    RETURN_IF_ERROR(backend->Zero(out));
  }
  MoeExpertsExtras extras;  // routed experts only: no shared ones in the stack in this mode
  extras.expert_counts = expert_counts_.Slice(first_expert_, local_experts_);
  extras.first_expert = first_expert_;
  extras.num_routed_experts = num_experts_;
  auto local = [&](const Tensor& rx, const Tensor& rids, const Tensor& rweights, const Tensor& y) {
    return backend->MoeExperts(rx, rids, rweights, gate_up_, down_, y, extras);
  };
  return DispatchToExperts(backend, parallel.comm(), x, ids, weights, valid_rows, num_experts_, local, out);
}

}  // namespace moeserve
