// ModelRunner's tensor-parallel side: the leader's control messages and the followers' loop.

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/runner/model_runner.h"

namespace moeserve {

absl::Status ModelRunner::SendControl(StepKind kind) {
  if (channel_ == nullptr) return absl::OkStatus();
  encoder_.EncodeControl(kind, &message_);
  absl::Status s = channel_->Send(message_);
  // A heartbeat is a round trip: a broadcast's root may finish before anyone received it, and an
  // idle leader must still notice a follower that hangs.
  if (s.ok() && kind == StepKind::kHeartbeat) s = channel_->host()->Barrier();
  if (!s.ok()) channel_->host()->Abort(s);
  return absl::OkStatus();
}

absl::Status ModelRunner::Follow(StepChannel* channel) {
  Communicator* group = channel->host();
  if (!builder_.has_value()) return absl::FailedPreconditionError("model runner: the KV cache is not allocated");
  StepDecoder decoder;
  DecodedStep message;
  int64_t steps = 0;
  for (;;) {
    absl::StatusOr<absl::Span<const uint8_t>> bytes = channel->Receive();
    if (!bytes.ok()) group->Abort(bytes.status());
    if (absl::Status s = decoder.Decode(*bytes, &message); !s.ok()) group->Abort(s);
    if (message.kind == StepKind::kShutdown) {
      MS_LOG(INFO) << "rank " << group->rank() << ": shutting down after " << steps << " steps";
      return absl::OkStatus();
    }
    if (message.kind == StepKind::kHeartbeat) {
      if (absl::Status s = group->Barrier(); !s.ok()) group->Abort(s);
      continue;
    }
    const ForwardBatch& batch = builder_->Build(message.step, message.extra_logits_rows);
    absl::StatusOr<Tensor> logits = RunForward(batch);  // only rank 0 samples
    absl::Status s = logits.status();
    if (s.ok()) s = backend_->Synchronize();
    if (!s.ok()) {
      group->Abort(absl::Status(s.code(), absl::StrCat("rank ", group->rank(), " step ", steps, ": ", s.message())));
    }
    ++steps;
  }
}

}  // namespace moeserve
