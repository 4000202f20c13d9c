#ifndef MOESERVE_SERVER_DIST_SINGLE_COMMUNICATOR_H_
#define MOESERVE_SERVER_DIST_SINGLE_COMMUNICATOR_H_

// The communicator of a group of one (no tensor parallelism): reductions and broadcasts leave
// their operand as it is, gathers and exchanges copy `in` to `out` (through the host: this is never
// a hot path, as model code skips collectives when world_size() == 1). Abort logs and exits.
//
// Thread safety: as every Communicator.

#include "server/backend/backend.h"
#include "server/dist/communicator.h"

namespace moeserve {

class SingleCommunicator final : public Communicator {
 public:
  // `backend` (the tensors' owner) must outlive the communicator.
  explicit SingleCommunicator(Backend* backend) : backend_(backend) {}

  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string_view name() const override { return "single"; }

  absl::Status AllReduce(const Tensor& x) override { return absl::OkStatus(); }
  absl::Status AllGather(const Tensor& in, const Tensor& out) override;
  absl::Status ReduceScatter(const Tensor& in, const Tensor& out) override;
  absl::Status AllToAll(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                        absl::Span<const int64_t> recv_rows) override;
  absl::Status Broadcast(const Tensor& x, int root) override;

  absl::Status BroadcastHost(absl::Span<uint8_t> bytes, int root) override;
  absl::Status AllGatherHost(absl::Span<const uint8_t> in, absl::Span<uint8_t> out) override;
  absl::Status Barrier() override { return absl::OkStatus(); }
  [[noreturn]] void Abort(const absl::Status& why) override;

 private:
  absl::Status Copy(const Tensor& in, const Tensor& out);

  Backend* const backend_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_DIST_SINGLE_COMMUNICATOR_H_
