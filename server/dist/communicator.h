#ifndef MOESERVE_SERVER_DIST_COMMUNICATOR_H_
#define MOESERVE_SERVER_DIST_COMMUNICATOR_H_

// Communicator: the collectives the ranks of a tensor/expert-parallel group run together, the one
// seam through which model and runner code talks to other ranks. Implementations (registry.h picks
// one): a single rank (no peers), MPI over host memory (CPU ranks), NCCL over device memory (GPU
// ranks, bootstrapped and served on the host by another communicator). Model code names only this
// interface, never MPI or NCCL.
//
// Contract, for every method: every rank of the group calls the same collectives in the same
// order with the same shapes and dtypes (rows may differ only where a method says so). Tensor
// operands live in the memory of the backend the communicator was made for, and follow its
// ordering (a CUDA stream: the collective runs after the ops queued before it). Host operands are
// plain host memory and the call returns when the host buffer holds the result.
//
// Failure: a collective that does not complete within the communicator's timeout returns
// DeadlineExceeded naming this rank, the collective and the ranks that did not answer (hung or
// dead); an error of the transport returns Internal with its message. Either leaves the group in
// an unusable state: the caller ends it with Abort(), which makes every rank exit non-zero (an
// orchestrator's restart brings it back). A peer whose process dies is noticed at once (the MPI
// communicator's lifelines, lifeline.h): the collective fails with Unavailable naming it.
//
// Thread safety: one thread calls a communicator at a time (the engine thread of the rank).

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/backend/tensor.h"

namespace moeserve {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string_view name() const = 0;  // "single", "mpi", "nccl"

  // ---- Backend tensors -----------------------------------------------------------------------
  // x = Σ over ranks of x, in place. f32 everywhere; bf16/f16 where the transport reduces them.
  virtual absl::Status AllReduce(const Tensor& x) = 0;
  // out [N * in.dim(0), ...] = every rank's `in` concatenated along dimension 0 in rank order.
  virtual absl::Status AllGather(const Tensor& in, const Tensor& out) = 0;
  // out [in.dim(0) / N, ...] = rows [r * n, (r + 1) * n) of Σ over ranks of `in`, on rank r.
  virtual absl::Status ReduceScatter(const Tensor& in, const Tensor& out) = 0;
  // Exchange of rows (dimension 0), all-to-all-v: this rank sends send_rows[p] consecutive rows of
  // `in` to rank p (blocks in rank order, p = 0 first) and receives recv_rows[p] rows from rank p
  // into `out` in rank order. Counts may differ per rank but must match pairwise (what r sends
  // to p is what p receives from r); sums must equal in.dim(0) and out.dim(0).
  virtual absl::Status AllToAll(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                                absl::Span<const int64_t> recv_rows) = 0;
  // x on every rank = x on rank `root`.
  virtual absl::Status Broadcast(const Tensor& x, int root) = 0;

  // ---- Host memory ---------------------------------------------------------------------------
  // bytes on every rank = bytes on `root` (the same size everywhere).
  virtual absl::Status BroadcastHost(absl::Span<uint8_t> bytes, int root) = 0;
  // out [N * in.size()] = every rank's `in` in rank order.
  virtual absl::Status AllGatherHost(absl::Span<const uint8_t> in, absl::Span<uint8_t> out) = 0;
  virtual absl::Status Barrier() = 0;

  // Ends the whole group: logs `why` with this rank's number and makes every rank exit non-zero.
  // Never returns.
  [[noreturn]] virtual void Abort(const absl::Status& why) = 0;
};

// Checks shared by the implementations: InvalidArgument naming the collective and the operand.
namespace dist_checks {
absl::Status AllGatherShapes(const Tensor& in, const Tensor& out, int world_size);
absl::Status ReduceScatterShapes(const Tensor& in, const Tensor& out, int world_size);
absl::Status AllToAllShapes(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                            absl::Span<const int64_t> recv_rows, int world_size);
absl::Status Root(absl::string_view op, int root, int world_size);
// "f32[4, 8]"-style description of a collective for messages: "all_reduce #12 f32[4, 8]".
std::string Describe(absl::string_view op, uint64_t sequence, const Tensor& x);
}  // namespace dist_checks

}  // namespace moeserve

#endif  // MOESERVE_SERVER_DIST_COMMUNICATOR_H_
