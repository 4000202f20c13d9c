#include "server/runner/parallel_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/model/architecture.h"
#include "server/model/parallel.h"

namespace moeserve {
namespace {

constexpr int64_t kBlock = 128;  // fp8 block scales: 128x128

// Rank 0 of a group of `size` as a shape only, so that the plan splits through ModelParallel::Share
// exactly as the load does (and refuses with its message). No collective may be called.
class GroupShape final : public Communicator {
 public:
  explicit GroupShape(int size) : size_(size) {}
  int rank() const override { return 0; }
  int world_size() const override { return size_; }
  std::string_view name() const override { return "plan"; }
  absl::Status AllReduce(const Tensor&) override { return None(); }
  absl::Status AllGather(const Tensor&, const Tensor&) override { return None(); }
  absl::Status ReduceScatter(const Tensor&, const Tensor&) override { return None(); }
  absl::Status AllToAll(const Tensor&, absl::Span<const int64_t>, const Tensor&, absl::Span<const int64_t>) override {
    return None();
  }
  absl::Status Broadcast(const Tensor&, int) override { return None(); }
  absl::Status BroadcastHost(absl::Span<uint8_t>, int) override { return None(); }
  absl::Status AllGatherHost(absl::Span<const uint8_t>, absl::Span<uint8_t>) override { return None(); }
  absl::Status Barrier() override { return None(); }
  [[noreturn]] void Abort(const absl::Status& why) override {
    std::fprintf(stderr, "moeserve plan: %s\n", std::string(why.message()).c_str());
    std::abort();
  }

 private:
  static absl::Status None() { return absl::FailedPreconditionError("moeserve plan runs no collectives"); }
  const int size_;
};

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One rank's weight bytes, tensor by tensor, as the load makes them (see the header).
class RankWeights {
 public:
  RankWeights(const ModelConfig& c, int ranks, bool expert_parallel, bool ep_all_to_all)
      : c_(c),
        ranks_(ranks),
        expert_parallel_(expert_parallel && ranks > 1),
        fp8_(c.fp8_block_rows > 0),
        shape_(ranks),
        parallel_(&shape_, expert_parallel, ep_all_to_all ? EpDispatch::kAllToAll : EpDispatch::kAllReduce) {}

  int64_t bytes() const { return bytes_; }
  int64_t replicated() const { return replicated_; }
  int64_t widened() const { return widened_; }

  absl::StatusOr<Range> Share(int64_t n, absl::string_view what) const { return parallel_.Share(n, what); }

  // A vector (f32) or a matrix (bf16) whole on every rank.
  void Whole(const WeightSpec& w, bool fp8_stored) {
    int64_t n = 1;
    for (int64_t s : w.shape) n *= s;
    const int64_t b = w.shape.size() <= 1 ? 4 * n : 2 * n;
    bytes_ += b;
    replicated_ += b;
    if (fp8_stored && w.shape.size() == 2) widened_ += b;
  }
  // `count` rows (dim 0) or columns (dim 1) of matrix `w`, held in bf16 (a vector: f32). An fp8
  // block-scaled matrix must be split on whole blocks, as HostSlice requires.
  absl::Status Part(const WeightSpec& w, int dim, int64_t count, bool fp8_stored) {
    if (fp8_stored && w.shape.size() == 2 && count != w.shape[dim] && count % kBlock != 0)
      return OffBlocks(w, dim, count);
    const int64_t n = w.shape.size() <= 1 ? count : count * w.shape[1 - dim];
    bytes_ += w.shape.size() <= 1 ? 4 * n : 2 * n;
    if (fp8_stored && w.shape.size() == 2) widened_ += 2 * n;
    return absl::OkStatus();
  }
  // A [rows, cols] slice kept as fp8 blocks: a byte per weight and an f32 scale per block.
  void Fp8(int64_t rows, int64_t cols) { bytes_ += rows * cols + 4 * CeilDiv(rows, kBlock) * CeilDiv(cols, kBlock); }

  absl::Status Gqa(const GqaTensors& t) {
    ASSIGN_OR_RETURN(const Range heads, Share(c_.num_attention_heads, "num_attention_heads"));
    int64_t kv_heads = 1;  // fewer kv heads than ranks: each replicated on N / Hkv ranks
    if (const int64_t kv = c_.num_key_value_heads; kv % ranks_ == 0 || ranks_ % kv != 0) {
      ASSIGN_OR_RETURN(const Range r, Share(kv, "num_key_value_heads"));
      kv_heads = r.count;
    }
    const int64_t hd = c_.head_dim, q_rows = heads.count * hd, kv_rows = kv_heads * hd;
    RETURN_IF_ERROR(Part(t.q, 0, q_rows, fp8_));
    RETURN_IF_ERROR(Part(t.k, 0, kv_rows, fp8_));
    RETURN_IF_ERROR(Part(t.v, 0, kv_rows, fp8_));
    RETURN_IF_ERROR(Part(t.o, 1, q_rows, fp8_));
    if (t.q_bias) RETURN_IF_ERROR(Part(*t.q_bias, 0, q_rows, false));
    if (t.k_bias) RETURN_IF_ERROR(Part(*t.k_bias, 0, kv_rows, false));
    if (t.v_bias) RETURN_IF_ERROR(Part(*t.v_bias, 0, kv_rows, false));
    for (const auto* w : {&t.o_bias, &t.q_norm, &t.k_norm}) {
      if (*w) Whole(**w, false);  // o_bias: on rank 0 only, the largest rank
    }
    kv_bytes_per_token_per_layer_ = 2 * kv_rows * 2;
    return absl::OkStatus();
  }

  absl::Status Mla(const MlaTensors& t) {
    ASSIGN_OR_RETURN(const Range heads, Share(c_.num_attention_heads, "num_attention_heads"));
    const int64_t h = heads.count;
    if (t.q_a) Whole(*t.q_a, fp8_);
    if (t.q_a_norm) Whole(*t.q_a_norm, false);
    Whole(t.kv_a, fp8_);
    Whole(t.kv_a_norm, false);
    RETURN_IF_ERROR(Part(t.q, 0, h * (c_.qk_nope_head_dim + c_.qk_rope_head_dim), fp8_));
    RETURN_IF_ERROR(Part(t.kv_b, 0, h * (c_.qk_nope_head_dim + c_.v_head_dim), fp8_));
    RETURN_IF_ERROR(Part(t.o, 1, h * c_.v_head_dim, fp8_));
    kv_bytes_per_token_per_layer_ = (c_.kv_lora_rank + c_.qk_rope_head_dim) * 2;
    kv_replicated_ = ranks_ > 1;
    return absl::OkStatus();
  }

  absl::Status Mlp(const MlpTensors& t, Range ir) {
    RETURN_IF_ERROR(Part(t.gate, 0, ir.count, fp8_));
    RETURN_IF_ERROR(Part(t.up, 0, ir.count, fp8_));
    return Part(t.down, 1, ir.count, fp8_);
  }

  absl::Status Moe(const MoeTensors& t) {
    const int64_t e_count = c_.num_experts, d = c_.hidden_size, i_size = c_.moe_intermediate_size;
    Range er{0, e_count}, ir{0, i_size};
    if (expert_parallel_) {
      ASSIGN_OR_RETURN(er, Share(e_count, "the number of routed experts"));
    } else {
      ASSIGN_OR_RETURN(ir, Share(i_size, "moe_intermediate_size"));
    }
    Whole(t.router, false);
    if (t.correction_bias) Whole(*t.correction_bias, false);
    // fp8 experts stay fp8 when the rank's channels and the hidden size fall on whole blocks.
    const bool keep_fp8 = fp8_ && ir.count % kBlock == 0 && d % kBlock == 0;
    if (keep_fp8) {
      Fp8(er.count * 2 * ir.count, d);  // gate and up, stacked: whole blocks each
      Fp8(er.count * d, ir.count);
    } else {
      for (int64_t e = 0; e < er.count; ++e) RETURN_IF_ERROR(Mlp(t.experts[static_cast<size_t>(e)], ir));
    }
    if (!t.shared) return absl::OkStatus();
    if (parallel_.ep_all_to_all()) {  // whole on every rank (ffn.cc)
      for (const WeightSpec* w : {&t.shared->gate, &t.shared->up, &t.shared->down}) Whole(*w, fp8_);
      return absl::OkStatus();
    }
    const int64_t n_shared = c_.n_shared_experts;
    ASSIGN_OR_RETURN(const Range xr, Share(t.shared->gate.shape[0], "the shared experts' intermediate size"));
    if (keep_fp8 && xr.count == n_shared * ir.count) {  // fused into the expert stack
      Fp8(n_shared * 2 * ir.count, d);
      Fp8(n_shared * d, ir.count);
      return absl::OkStatus();
    }
    return Mlp(*t.shared, xr);
  }

  absl::Status Decoder(const DecoderTensors& t) {
    ASSIGN_OR_RETURN(const Range vocab, Share(c_.vocab_size, "vocab_size"));
    RETURN_IF_ERROR(Part(t.embed, 0, vocab.count, false));
    if (t.lm_head) RETURN_IF_ERROR(Part(*t.lm_head, 0, vocab.count, false));
    Whole(t.final_norm, false);
    for (const LayerTensors& layer : t.layers) {
      Whole(layer.input_norm, false);
      Whole(layer.post_attention_norm, false);
      if (const auto* gqa = std::get_if<GqaTensors>(&layer.attention)) {
        RETURN_IF_ERROR(Gqa(*gqa));
      } else {
        RETURN_IF_ERROR(Mla(std::get<MlaTensors>(layer.attention)));
      }
      if (const auto* mlp = std::get_if<MlpTensors>(&layer.ffn)) {
        ASSIGN_OR_RETURN(const Range ir, Share(mlp->gate.shape[0], "the MLP's intermediate size"));
        RETURN_IF_ERROR(Mlp(*mlp, ir));
      } else {
        RETURN_IF_ERROR(Moe(std::get<MoeTensors>(layer.ffn)));
      }
    }
    kv_layers_ = static_cast<int64_t>(t.layers.size());
    return absl::OkStatus();
  }

  int64_t kv_bytes_per_token() const { return kv_layers_ * kv_bytes_per_token_per_layer_; }
  bool kv_replicated() const { return kv_replicated_; }

 private:
  absl::Status OffBlocks(const WeightSpec& w, int dim, int64_t count) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor \"", w.name, "\" is fp8 with 128x128 block scales: a share of ", count, " along dimension ", dim,
        " of ", w.shape[dim], " does not fall on 128-blocks at tensor-parallel size ", ranks_,
        " (choose a size that splits it into multiples of 128)"));
  }

  const ModelConfig& c_;
  const int ranks_;
  const bool expert_parallel_;
  const bool fp8_;  // the checkpoint's matrices are fp8 block-scaled (not the embedding, LM head, routers)
  GroupShape shape_;
  ModelParallel parallel_;
  int64_t bytes_ = 0, replicated_ = 0, widened_ = 0;
  int64_t kv_layers_ = 0, kv_bytes_per_token_per_layer_ = 0;
  bool kv_replicated_ = false;
};

std::string Bytes(int64_t b) {
  const double v = static_cast<double>(b);
  if (std::abs(v) >= (int64_t{1} << 30)) return absl::StrFormat("%.1f GiB", v / (int64_t{1} << 30));
  if (std::abs(v) >= (int64_t{1} << 20)) return absl::StrFormat("%.1f MiB", v / (int64_t{1} << 20));
  return absl::StrFormat("%.1f KiB", v / 1024);
}

}  // namespace

absl::StatusOr<ParallelPlan> PlanParallel(const ModelConfig& config, const ParallelPlanOptions& options) {
  if (options.gpus < 1)
    return absl::InvalidArgumentError(absl::StrCat("--gpus must be at least 1, got ", options.gpus));
  const int tp = options.tensor_parallel_size == 0 ? options.gpus : options.tensor_parallel_size;
  if (tp != options.gpus) {
    return absl::InvalidArgumentError(absl::StrCat("--tensor-parallel-size (", tp, ") must equal --gpus (",
                                                   options.gpus, "): moeserve runs one tensor-parallel group over ",
                                                   "every GPU, one rank each"));
  }
  if (options.gpu_memory_bytes <= 0) return absl::InvalidArgumentError("--gpu-memory must be positive");
  if (!(options.gpu_memory_utilization > 0 && options.gpu_memory_utilization <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpu-memory-utilization must be in (0, 1], got ", options.gpu_memory_utilization));
  }
  if (options.seq_len < 1) return absl::InvalidArgumentError("--seq-len must be at least 1");
  if (options.expert_parallel && config.num_experts == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--expert-parallel: ", config.architecture, " has no experts"));
  }
  const Architecture* arch = BuiltinArchitectures().Find(config.architecture);
  if (arch == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown architecture ", config.architecture));
  const DecoderTensors tensors = arch->Tensors(config);

  RankWeights rank(config, tp, options.expert_parallel, options.ep_all_to_all), whole(config, 1, false, false);
  RETURN_IF_ERROR(rank.Decoder(tensors));
  RETURN_IF_ERROR(whole.Decoder(tensors));
  ParallelPlan p;
  p.ranks = tp;
  p.weight_bytes_per_rank = rank.bytes();
  p.replicated_bytes_per_rank = rank.replicated();
  p.weight_bytes_total = whole.bytes();
  p.checkpoint_fp8_widened_bytes = rank.widened();
  p.kv_bytes_per_token = rank.kv_bytes_per_token();
  p.kv_replicated = rank.kv_replicated();
  p.kv_budget_bytes =
      static_cast<int64_t>(options.gpu_memory_utilization * static_cast<double>(options.gpu_memory_bytes)) -
      p.weight_bytes_per_rank - options.reserve_bytes;
  if (p.kv_budget_bytes > 0 && p.kv_bytes_per_token > 0) {
    p.kv_capacity_tokens = p.kv_budget_bytes / p.kv_bytes_per_token;
    p.concurrent_sequences = p.kv_capacity_tokens / options.seq_len;
  }
  p.fits = p.concurrent_sequences >= 1;
  return p;
}

std::string ParallelPlan::ToString(const ModelConfig& config, const ParallelPlanOptions& options) const {
  std::string s = absl::StrFormat(
      "model: %s, %d layers, %d experts\n"
      "group: %d GPU(s) x %s, tensor-parallel size %d%s, gpu-memory-utilization %.2f, reserve %s per rank\n",
      config.architecture, config.num_hidden_layers, config.num_experts, options.gpus, Bytes(options.gpu_memory_bytes),
      ranks, options.expert_parallel ? " with expert parallelism" : "", options.gpu_memory_utilization,
      Bytes(options.reserve_bytes));
  absl::StrAppendFormat(&s, "weights per rank: %s (replicated on every rank: %s; the whole model: %s)\n",
                        Bytes(weight_bytes_per_rank), Bytes(replicated_bytes_per_rank), Bytes(weight_bytes_total));
  if (checkpoint_fp8_widened_bytes > 0) {
    absl::StrAppendFormat(&s, "  of which fp8 checkpoint matrices held in bf16 (all but the experts): %s\n",
                          Bytes(checkpoint_fp8_widened_bytes));
  }
  absl::StrAppendFormat(&s, "KV cache per token per rank: %d bytes%s\n", kv_bytes_per_token,
                        kv_replicated ? " (MLA: the latent cache is whole on every rank, not split)" : "");
  absl::StrAppendFormat(&s, "KV budget per rank: %s\n", Bytes(kv_budget_bytes));
  absl::StrAppendFormat(&s, "KV capacity: %d tokens, %d concurrent sequences of %d tokens\n", kv_capacity_tokens,
                        concurrent_sequences, options.seq_len);
  absl::StrAppendFormat(&s, "fits: %s\n",
                        fits ? "yes"
                        : kv_budget_bytes <= 0
                            ? "no (the weights and the reserve exceed the usable memory)"
                            : absl::StrCat("no (not one sequence of ", options.seq_len, " tokens fits the KV budget)"));
  return s;
}

}  // namespace moeserve
