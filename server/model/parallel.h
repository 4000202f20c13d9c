#ifndef MOESERVE_SERVER_MODEL_PARALLEL_H_
#define MOESERVE_SERVER_MODEL_PARALLEL_H_

// How a model is split over the ranks of a tensor-parallel group (server/dist), and the sharded
// loads its blocks use. Every rank builds the same model over its own slices:
//   - attention: heads split (q/k/v rows, o columns; MLA: q_b and kv_b rows, o columns; the latent
//     projections and the latent cache are whole on every rank);
//   - dense MLP and shared experts: intermediate split (gate/up rows, down columns);
//   - MoE: each expert's intermediate split, or with expert parallelism whole experts per rank;
//   - embedding and LM head: vocabulary split.
// Each block's output is then a partial sum that the decoder layer all-reduces; logits are
// gathered across the vocabulary. With expert parallelism the MoE layers exchange tokens one of
// two ways (EpDispatch): every rank runs its experts over every (replicated) token and the
// FFN's partial sums are all-reduced, or the attention output is reduce-scattered so that each
// rank owns a slice of the tokens, which it routes and sends to the ranks of their experts and
// back (all-to-all-v; moe_dispatch.h), before an all-gather restores every token on every rank. Model code reaches the
// other ranks only through the Communicator it holds here, never naming a transport.
//
// A value: cheap to copy; the communicator must outlive every copy.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/backend/backend.h"
#include "server/dist/communicator.h"
#include "server/model/checkpoint.h"
#include "server/model/weight_spec.h"

namespace moeserve {

class WeightLoader;

// Consecutive items [begin, begin + count) of one dimension.
struct Range {
  int64_t begin = 0;
  int64_t count = 0;
  int64_t end() const { return begin + count; }
};

// How an expert-parallel MoE layer moves tokens to the ranks of their experts (see above).
enum class EpDispatch { kAllReduce, kAllToAll };
// "allreduce" / "alltoall".
absl::string_view EpDispatchName(EpDispatch dispatch);
// InvalidArgument naming the accepted values.
absl::StatusOr<EpDispatch> ParseEpDispatch(absl::string_view name);

class ModelParallel {
 public:
  ModelParallel() = default;  // one rank: nothing split, no collectives
  // `comm` null or of size 1: one rank.
  ModelParallel(Communicator* comm, bool expert_parallel, EpDispatch dispatch = EpDispatch::kAllReduce)
      : comm_(comm != nullptr && comm->world_size() > 1 ? comm : nullptr),
        expert_parallel_(expert_parallel),
        dispatch_(dispatch) {}

  int rank() const { return comm_ != nullptr ? comm_->rank() : 0; }
  int size() const { return comm_ != nullptr ? comm_->world_size() : 1; }
  bool sharded() const { return comm_ != nullptr; }
  bool expert_parallel() const { return expert_parallel_ && sharded(); }
  // Expert parallelism with tokens dispatched and combined by all-to-all.
  bool ep_all_to_all() const { return expert_parallel() && dispatch_ == EpDispatch::kAllToAll; }
  EpDispatch ep_dispatch() const { return dispatch_; }
  Communicator* comm() const { return comm_; }

  // This rank's equal share of n items: n / size() of them from rank * n / size().
  // InvalidArgument naming `what` when size() does not divide n.
  absl::StatusOr<Range> Share(int64_t n, absl::string_view what) const;
  // x = Σ over ranks of x, in place; nothing for one rank.
  absl::Status AllReduce(const Tensor& x) const;

 private:
  Communicator* comm_ = nullptr;
  bool expert_parallel_ = false;
  EpDispatch dispatch_ = EpDispatch::kAllReduce;
};

// Sharded loads: `range` along dimension `dim` of checkpoint tensor `name` (of `shape`), only
// those elements read from the mapped file. A 2-D weight [out, in] split by rows (dim 0) is
// column-parallel, by columns (dim 1) row-parallel. An fp8 block-scaled tensor is split only on
// its 128-row/column block boundaries (InvalidArgument naming the tensor otherwise).
absl::StatusOr<std::vector<float>> HostSlice(const WeightLoader& loader, const std::string& name,
                                             const std::vector<int64_t>& shape, int dim, Range range);
absl::StatusOr<Tensor> LoadSlice(WeightLoader& loader, const std::string& name, const std::vector<int64_t>& shape,
                                 int dim, Range range);
// The e4m3 bytes and block scales of rows (dim 0) or columns (dim 1) `range` of a 2-D fp8 weight,
// appended as WeightLoader::HostFp8Block appends the whole; false (nothing appended) when the
// tensor is not stored that way or the range does not fall on whole 128-blocks.
absl::StatusOr<bool> HostFp8BlockSlice(const WeightLoader& loader, const std::string& name,
                                       const std::vector<int64_t>& shape, int dim, Range range,
                                       std::vector<uint8_t>* bytes, std::vector<float>* scales);
// The same for an architecture's tensor (its checkpoint name: WeightLoader::Name). A range that
// covers the whole dimension loads the tensor as WeightLoader::Load does.
absl::StatusOr<std::vector<float>> HostSlice(const WeightLoader& loader, const WeightSpec& spec, int dim, Range range);
absl::StatusOr<Tensor> LoadSlice(WeightLoader& loader, const WeightSpec& spec, int dim, Range range);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_PARALLEL_H_
