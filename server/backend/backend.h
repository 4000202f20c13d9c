#ifndef MOESERVE_SERVER_BACKEND_BACKEND_H_
#define MOESERVE_SERVER_BACKEND_BACKEND_H_

// The Backend interface: device memory and the ops the model code is written in.
//
// Model code never names a backend; it calls these ops, so the CPU reference and the CUDA backend
// run the same model code and can be compared op by op. Every op validates shapes and dtypes and
// returns InvalidArgument naming the op and the offending operand instead of touching memory it
// should not. Ops are asynchronous on devices with streams: results are visible to later ops on the
// same backend and after CopyToHost / Synchronize.
//
// Conventions (T = tokens in the flat batch, S = sequences, H = query heads, Hkv = kv heads,
// D = head dim, E = experts, NB = KV blocks, BS = block size):
// - Activations are `activation_dtype()` (f32 on CPU, bf16 on CUDA). Index tensors are i32.
// - Weights are created through CreateWeight from host fp32 data, or CreateWeightFromHost from host
//   bytes in the checkpoint's dtype; the backend picks the storage dtype. A linear weight has shape
//   [out, in] (PyTorch layout): y = x · wᵀ (+ b).
// - Outputs are preallocated by the caller and never alias inputs unless an op says so.
//
// Thread safety: a Backend is used by one thread (the engine thread) at a time.

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/tensor.h"

namespace moeserve {

// Where the K/V rows of one layer live for a batch. Built once per step by the model runner and
// shared by every attention layer. All tensors are i32 on the backend.
struct AttentionMetadata {
  int32_t num_seqs = 0;
  int32_t num_tokens = 0;
  int32_t max_query_len = 0;
  int32_t max_seq_len = 0;
  int32_t block_size = 0;
  Tensor query_start_loc;  // [S + 1]: tokens of sequence s are rows [qsl[s], qsl[s+1]) of the batch
  Tensor seq_lens;         // [S]: context length of s after this step (cached + new tokens)
  Tensor block_tables;     // [S, max_blocks_per_seq]: physical block of each logical block
  Tensor slot_mapping;     // [T]: cache slot (block * BS + offset) each new token writes; < 0 skips
};

// How a precomputed rotary table is applied.
enum class RopeStyle : uint8_t {
  kNeox,         // rotate halves: pairs (i, i + rot/2) — Hugging Face Llama/Qwen2 "rotate_half"
  kInterleaved,  // rotate adjacent pairs (2i, 2i + 1) — GPT-J, llama2.c, DeepSeek's MLA rope
};

enum class MoeScoring : uint8_t { kSoftmax, kSigmoid };
enum class MoeTopkMethod : uint8_t {
  kGreedy,              // top-k over all experts
  kGroupLimitedGreedy,  // DeepSeek-V2: groups ranked by their best expert score
  kNoAuxTc,             // DeepSeek-V3: groups ranked by the sum of their top-2 biased scores;
                        // experts chosen by biased score, weighted by unbiased score
};

struct MoeRoutingParams {
  int32_t top_k = 2;
  MoeScoring scoring = MoeScoring::kSoftmax;
  MoeTopkMethod method = MoeTopkMethod::kGreedy;
  int32_t n_group = 1;
  int32_t topk_group = 1;
  bool norm_topk_prob = true;          // renormalise the chosen weights to sum to 1
  float routed_scaling_factor = 1.0f;  // multiplies the final weights
};

// The device memory a backend allocates from (see Backend::MemoryStats).
struct DeviceMemoryStats {
  int64_t total_bytes = 0;            // the device's memory
  int64_t free_bytes = 0;             // free on the device now (cached blocks count as used)
  int64_t in_use_bytes = 0;           // held by live tensors
  int64_t cached_bytes = 0;           // freed tensors kept by the caching allocator for reuse
  int64_t peak_in_use_bytes = 0;      // highest in_use_bytes since the last MarkMemory()
  int64_t raw_allocs = 0;             // device allocations (cudaMalloc) since creation
  int64_t raw_allocs_since_mark = 0;  // ... since the last MarkMemory(): misses after warm-up
};

// Optional operands of MoeExperts (empty tensors when unused).
struct MoeExpertsExtras {
  // [T, d] activation dtype: added to the output (the shared experts' output, fused into the
  // combine). May alias `out`.
  Tensor shared_out;
  // i64 [E - num_shared_experts]: += the number of (token, slot) pairs routed to each routed
  // expert (load statistics; stays on the device until read).
  Tensor expert_counts;
  // S: the last S of gate_up / down's E experts are always-on shared experts, applied to every
  // token with weight 1 inside the same grouped computation as the routed ones (each token has
  // K + S pairs); topk_ids then lie in [0, E - S). A DeepSeek shared MLP of intermediate S·I is
  // exactly the sum of S such experts (MoeFfn splits it at load). 0 ≤ S < E.
  int64_t num_shared_experts = 0;
  // i32 [1] on the backend, read on the device (no host sync, so a recorded graph reads each
  // replay's value): the number n of real tokens; rows [n, T) are padding (a CUDA-graph decode
  // step's bucket rows) and add nothing to expert_counts. n is clamped to [0, T]. Every row is
  // still computed as usual, so `out` does not depend on it. Undefined: all T rows are real.
  Tensor num_valid_tokens;
  // Expert parallelism: gate_up / down hold routed experts [first_expert, first_expert + E - S) of
  // the model's num_routed_experts (0: E - S, every routed expert is here); topk_ids name the
  // model's experts, in [0, num_routed_experts), and pairs routed outside this slice contribute
  // nothing and are not counted (expert_counts covers the slice). Summing every slice's out gives
  // the whole MoE.
  int64_t first_expert = 0;
  int64_t num_routed_experts = 0;
};

// Device sampling (optional; server/sampling/device_sampling.h builds these from SamplingParams
// and the host Sampler is the reference). One sparse edit of a row's logits, in the host order: bias,
// suppression (-inf), repetition penalty (id in prompt or output), frequency/presence (count > 0).
struct SamplingEdit {
  int32_t id = 0;
  float bias = 0.0f;
  bool suppress = false;
  bool repetition = false;
  int32_t count = 0;
};
struct SamplingRowSpec {
  int32_t logits_row = 0;
  bool greedy = false;
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f, min_p = 0.0f;
  float repetition = 1.0f, presence = 0.0f, frequency = 0.0f;
  uint64_t seed = 0, step = 0;           // Philox key and counter (server/sampling/philox.h)
  int32_t edit_begin = 0, edit_end = 0;  // into SamplingBatch::edits
  int32_t num_top_logprobs = -1;         // -1: no logprobs
  int32_t mask_row = -1;                 // structured output: row of SamplingBatch::masks; -1: none
};
struct SamplingBatch {
  std::vector<SamplingRowSpec> rows;
  std::vector<SamplingEdit> edits;
  // Structured-output masks, mask_words per row: bit (id % 32) of word (id / 32) clear: id gets
  // -inf before the edits (sampler.h, step 0).
  std::vector<uint32_t> masks;
  int32_t mask_words = 0;  // (vocab + 31) / 32 when any row has a mask
};
struct SampledToken {
  int32_t token = -1;
  int32_t status = 0;  // 0 ok; else why the row could not be sampled (kernels::SampleStatus)
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // (id, logprob), most likely first
};

// Host bytes of one weight as a checkpoint stores it, for Backend::CreateWeightFromHost.
struct HostWeight {
  DType dtype = DType::kF32;  // kF32, kBF16 or kF16
  Shape shape;
  absl::Span<const uint8_t> bytes;  // numel · DTypeSize(dtype) little-endian bytes, any alignment
  // Non-null when `bytes` stay valid and unchanged for as long as it lives (a mapped checkpoint, a
  // buffer the caller hands over): a backend whose memory is host memory may then keep the weight
  // in place, without a copy, holding `keep_alive`. Null: the bytes are only valid during the call.
  std::shared_ptr<const void> keep_alive;
};

// One host -> device copy of GraphCapture::UploadAsync.
struct HostUpload {
  absl::Span<const uint8_t> bytes;  // bytes.size() == dst.bytes()
  Tensor dst;
};

// CUDA graphs (optional, Backend::graphs()): a sequence of ops recorded once and replayed later
// over the same device buffers, whose contents the caller rewrites between replays
// (server/runner/decode_graph_runner.h records decode steps with it).
//
// Memory: while recording, and between BeginPoolAllocations/EndPoolAllocations, every Allocate
// comes from one private pool whose blocks are never handed to anyone else, even once freed, so
// a graph's intermediates stay valid between replays. All graphs share the pool: they never run
// concurrently, so a graph's output is valid until the next replay or pooled allocation.
// Requires external synchronization, as the Backend.
class GraphCapture {
 public:
  virtual ~GraphCapture() = default;
  // Starts recording on the backend's stream: ops queued until EndCapture are recorded, not run.
  // REQUIRES: not recording.
  virtual absl::Status BeginCapture() = 0;
  // Ends recording: the new graph's id (>= 0), or why it could not be recorded (the recording is
  // discarded; nothing ran). Always call it after BeginCapture succeeded, even when an op failed.
  virtual absl::StatusOr<int> EndCapture() = 0;
  // Queues graph `id` on the backend's stream.
  virtual absl::Status Replay(int id) = 0;
  // Eager ops in between allocate from the graph pool (a warm-up run of the shape about to be
  // recorded leaves the pool holding the blocks the recording needs).
  virtual void BeginPoolAllocations() = 0;
  virtual void EndPoolAllocations() = 0;
  // Queues the copies through pinned host staging; the host bytes may be reused on return.
  // Not while recording.
  virtual absl::Status UploadAsync(absl::Span<const HostUpload> copies) = 0;
  // Device bytes the graph pool holds (in use or cached for graphs).
  virtual int64_t pool_bytes() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;  // "cpu", "cuda"
  virtual DType activation_dtype() const = 0;

  // ---- Memory --------------------------------------------------------------------------------
  // Uninitialised device memory. Fails with ResourceExhausted when the device is out of memory.
  virtual absl::StatusOr<Tensor> Allocate(DType dtype, Shape shape) = 0;
  // A weight from host fp32 values (`values.size() == shape.numel()`), stored in the backend's
  // weight dtype.
  virtual absl::StatusOr<Tensor> CreateWeight(absl::Span<const float> values, Shape shape) = 0;
  // A weight from host bytes of dtype f32, bf16 or f16 (`w.bytes.size() == numel · size`). The
  // backend stores it as CreateWeight would store its values (exactly: a 16-bit value widens to
  // fp32 without rounding), possibly in place (see HostWeight::keep_alive). The default widens to
  // fp32 and calls CreateWeight.
  virtual absl::StatusOr<Tensor> CreateWeightFromHost(const HostWeight& w);
  // Host -> device copy of raw bytes; `bytes.size() == dst.bytes()`.
  virtual absl::Status CopyFromHost(absl::Span<const uint8_t> bytes, const Tensor& dst) = 0;
  // Device -> host copy; synchronises. `bytes.size() == src.bytes()`.
  virtual absl::Status CopyToHost(const Tensor& src, absl::Span<uint8_t> bytes) = 0;
  // Device -> host as fp32, converting from the tensor's dtype (f32/bf16/f16); synchronises.
  virtual absl::Status CopyToHostF32(const Tensor& src, absl::Span<float> out) = 0;
  // Sets every byte of `dst` to zero.
  virtual absl::Status Zero(const Tensor& dst) = 0;
  // Waits for all queued work.
  virtual absl::Status Synchronize() = 0;

  // Device memory, for sizing the KV cache from what the weights and a measured step leave free.
  // Unimplemented on backends that allocate host memory (the CPU). MarkMemory starts a measurement
  // window (peak and raw-allocation counts); ReleaseCachedMemory returns cached blocks to the
  // device. Both are no-ops where MemoryStats is unimplemented.
  virtual absl::StatusOr<DeviceMemoryStats> MemoryStats() {
    return absl::UnimplementedError("this backend has no device memory");
  }
  virtual void MarkMemory() {}
  virtual void ReleaseCachedMemory() {}

  // Samples one token per row of `logits` [n, vocab] on the device; only the ids (and requested
  // logprobs) come back. Unimplemented where the backend has no device sampler (the CPU: the
  // caller then copies the logits and runs the host Sampler, which is the reference).
  virtual absl::Status SampleTokens(const Tensor& logits, const SamplingBatch& batch, std::vector<SampledToken>* out) {
    (void)logits, (void)batch, (void)out;
    return absl::UnimplementedError("this backend samples on the host");
  }

  // CUDA graphs, or nullptr where the backend cannot record (the CPU).
  virtual GraphCapture* graphs() { return nullptr; }

  // ---- Ops -----------------------------------------------------------------------------------
  // out[t] = table[ids[t]]. table [V, d], ids i32 [T], out [T, d]. An id outside [0, V) is an error.
  virtual absl::Status Embedding(const Tensor& table, const Tensor& ids, const Tensor& out) = 0;

  // Vocabulary-parallel embedding (one rank's rows of the table): out[t] = table[ids[t] - first_id]
  // when ids[t] lies in [first_id, first_id + V), else zeros (a row another rank holds; summing
  // every rank's out gives Embedding over the whole table). table [V, d], ids i32 [T], out [T, d],
  // first_id >= 0.
  virtual absl::Status EmbeddingShard(const Tensor& table, const Tensor& ids, int64_t first_id, const Tensor& out) = 0;

  // out = x · wᵀ + bias. x [T, in], w [out, in], bias [out] or empty, out [T, out].
  virtual absl::Status Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) = 0;

  // out[t, h] = w[h] · x[t, h]. x [T, H, in], w [H, out, in], out [T, H, out]. Per-head
  // projections: MLA's absorbed key and value up-projections.
  virtual absl::Status HeadwiseLinear(const Tensor& x, const Tensor& w, const Tensor& out) = 0;

  // out = x / rms(x) * w, rms over the last dimension. x, out [T, d] (may alias), w [d].
  virtual absl::Status RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) = 0;

  // residual += x; out = RmsNorm(residual). x, residual, out [T, d]; out may alias x.
  virtual absl::Status AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& w, float eps,
                                  const Tensor& out) = 0;

  // out = a + b, same shapes; out may alias a or b.
  virtual absl::Status Add(const Tensor& a, const Tensor& b, const Tensor& out) = 0;

  // In place: rotates the first `rotary_dim` dims of every head of x [T, H, D] at position
  // positions[t] using cos_sin [max_position, rotary_dim] whose row p holds rotary_dim/2 cosines
  // followed by rotary_dim/2 sines (any scaling already folded in). A position outside
  // [0, max_position) is an error.
  virtual absl::Status Rope(const Tensor& x, const Tensor& positions, const Tensor& cos_sin, int32_t rotary_dim,
                            RopeStyle style) = 0;

  // out = silu(gate) * up with gate_up [T, 2I] = [gate | up], out [T, I].
  virtual absl::Status SiluMul(const Tensor& gate_up, const Tensor& out) = 0;

  // rows[i] = x[indices[i]]. x [T, d], indices i32 [n], out [n, d].
  virtual absl::Status GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) = 0;

  // Writes the new tokens' keys and values into the paged cache at meta.slot_mapping.
  // k [T, Hkv, D], v [T, Hkv, Dv], k_cache [NB, BS, Hkv, D], v_cache [NB, BS, Hkv, Dv].
  virtual absl::Status WriteKvCache(const Tensor& k, const Tensor& v, const AttentionMetadata& meta,
                                    const Tensor& k_cache, const Tensor& v_cache) = 0;

  // Rope fused with WriteKvCache: rotates q in place as Rope does, and writes Rope(k) and v into
  // the paged cache at meta.slot_mapping (k itself is left unchanged). q [T, H, D], k [T, Hkv, D],
  // v [T, Hkv, Dv], positions / cos_sin / rotary_dim / style as in Rope, caches as in WriteKvCache.
  // A negative slot skips that token's cache write (its q is still rotated).
  virtual absl::Status RopeWriteKvCache(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                        const Tensor& cos_sin, int32_t rotary_dim, RopeStyle style,
                                        const AttentionMetadata& meta, const Tensor& k_cache,
                                        const Tensor& v_cache) = 0;

  // Causal attention of the batch's queries over the paged cache (which already holds this step's
  // keys and values). Query row i of sequence s (query length q, context L) sits at position
  // L - q + i and attends to cache positions [0, L - q + i]. GQA: head h reads kv head h / (H/Hkv).
  // q [T, H, D], caches as in WriteKvCache, out [T, H, Dv].
  virtual absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                      const AttentionMetadata& meta, float scale, const Tensor& out) = 0;

  // MLA: writes latent rows [kv_c | k_pe] into cache [NB, BS, L + R] at meta.slot_mapping.
  // kv_c [T, L] (normalised latent), k_pe [T, R] (rotated).
  virtual absl::Status WriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const AttentionMetadata& meta,
                                     const Tensor& cache) = 0;

  // MLA: the rotary embedding of the shared rope key fused with the latent cache write. Writes
  // [kv_c | rope(k_pe)] into cache [NB, BS, L + R] at meta.slot_mapping, where rope(k_pe) rotates
  // all R dims of k_pe [T, R] at positions[t] with cos_sin [max_position, R] as Rope does
  // (rotary_dim = R). k_pe itself is left unchanged. Same result as Rope on a copy of k_pe followed
  // by WriteMlaCache; a position outside [0, max_position) is an error.
  virtual absl::Status RopeWriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const Tensor& positions,
                                         const Tensor& cos_sin, RopeStyle style, const AttentionMetadata& meta,
                                         const Tensor& cache) = 0;

  // MLA attention in the latent space (weights absorbed): score(t, h, j) =
  // scale * (q_latent[t, h] · c_j + q_pe[t, h] · pe_j) over cache rows j = [c_j | pe_j], causal as
  // in PagedAttention, out[t, h] = Σ_j softmax_j · c_j.
  // q_latent [T, H, L], q_pe [T, H, R], cache [NB, BS, L + R], out [T, H, L].
  virtual absl::Status PagedMlaAttention(const Tensor& q_latent, const Tensor& q_pe, const Tensor& cache,
                                         const AttentionMetadata& meta, float scale, const Tensor& out) = 0;

  // Expert choice per token. router_logits f32 [T, E]; correction_bias f32 [E] (kNoAuxTc only,
  // else empty); topk_ids i32 [T, k]; topk_weights f32 [T, k].
  virtual absl::Status MoeRoute(const Tensor& router_logits, const Tensor& correction_bias,
                                const MoeRoutingParams& params, const Tensor& topk_ids, const Tensor& topk_weights) = 0;

  // out[t] = Σ_k topk_weights[t, k] · down_e(silu(gate_e(x[t])) * up_e(x[t])), e = topk_ids[t, k]
  // (+ Σ_s FFN_{E-S+s}(x[t]) for extras.num_shared_experts = S) (+ extras.shared_out[t]).
  // x [T, d], gate_up [E, 2I, d] (gate rows then up rows), down
  // [E, d, I], out [T, d]. gate_up / down may be fp8 block weights (CreateFp8BlockWeight).
  virtual absl::Status MoeExperts(const Tensor& x, const Tensor& topk_ids, const Tensor& topk_weights,
                                  const Tensor& gate_up, const Tensor& down, const Tensor& out,
                                  const MoeExpertsExtras& extras) = 0;

  // A weight from fp8 e4m3 bytes with one fp32 scale per 128×128 block (DeepSeek-V3's
  // `weight_scale_inv`): value[r, c] = e4m3(bytes[r, c]) · scales[r / 128, c / 128]. shape [R, C]
  // or [E, R, C] (scales [E, ⌈R/128⌉, ⌈C/128⌉]). The backend keeps fp8 where its kernels read it
  // (CUDA: MoeExperts weights with R, C multiples of 128), else stores the dequantized values as
  // CreateWeight does (the CPU backend always: the reference). A kept-fp8 tensor has dtype
  // kF8E4M3 and is valid only as MoeExperts' gate_up / down.
  virtual absl::StatusOr<Tensor> CreateFp8BlockWeight(absl::Span<const uint8_t> bytes, absl::Span<const float> scales,
                                                      Shape shape) = 0;
};

// The bytes of host values, as CopyFromHost and CopyToHost take them.
template <typename T>
absl::Span<const uint8_t> HostBytes(absl::Span<const T> values) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(T));
}
template <typename T>
absl::Span<const uint8_t> HostBytes(const std::vector<T>& values) {
  return HostBytes(absl::MakeConstSpan(values));
}
template <typename T>
absl::Span<uint8_t> MutableHostBytes(absl::Span<T> values) {
  return absl::MakeSpan(reinterpret_cast<uint8_t*>(values.data()), values.size() * sizeof(T));
}
template <typename T>
absl::Span<uint8_t> MutableHostBytes(std::vector<T>& values) {
  return MutableHostBytes(absl::MakeSpan(values));
}

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_BACKEND_H_
