#include "server/runner/step_channel.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

constexpr size_t kLength = sizeof(uint64_t);

}  // namespace

absl::Status StepChannel::Send(absl::Span<const uint8_t> message) {
  const absl::Time start = absl::Now();
  const uint64_t n = message.size();
  buffer_.resize(kInlineBytes);
  std::memcpy(buffer_.data(), &n, kLength);
  const size_t inline_bytes = std::min<size_t>(n, kInlineBytes - kLength);
  if (inline_bytes > 0) std::memcpy(buffer_.data() + kLength, message.data(), inline_bytes);
  RETURN_IF_ERROR(host_->BroadcastHost(absl::MakeSpan(buffer_.data(), kInlineBytes), 0));
  ++stats_.broadcasts;
  if (n > inline_bytes) {
    buffer_.assign(message.begin() + inline_bytes, message.end());
    RETURN_IF_ERROR(host_->BroadcastHost(absl::MakeSpan(buffer_), 0));
    ++stats_.broadcasts;
  }
  ++stats_.messages;
  stats_.bytes += static_cast<int64_t>(n);
  stats_.max_bytes = std::max(stats_.max_bytes, static_cast<int64_t>(n));
  stats_.time += absl::Now() - start;
  return absl::OkStatus();
}

absl::StatusOr<absl::Span<const uint8_t>> StepChannel::Receive() {
  const absl::Time start = absl::Now();
  buffer_.resize(kInlineBytes);
  RETURN_IF_ERROR(host_->BroadcastHost(absl::MakeSpan(buffer_.data(), kInlineBytes), 0));
  ++stats_.broadcasts;
  uint64_t n = 0;
  std::memcpy(&n, buffer_.data(), kLength);
  if (n > (uint64_t{1} << 34)) return absl::DataLossError(absl::StrCat("step channel: message of ", n, " bytes"));
  const size_t inline_bytes = std::min<size_t>(n, kInlineBytes - kLength);
  if (n > inline_bytes) {
    std::vector<uint8_t> rest(n - inline_bytes);
    RETURN_IF_ERROR(host_->BroadcastHost(absl::MakeSpan(rest), 0));
    ++stats_.broadcasts;
    buffer_.resize(kLength + n);
    std::memcpy(buffer_.data() + kLength + inline_bytes, rest.data(), rest.size());
  }
  ++stats_.messages;
  stats_.bytes += static_cast<int64_t>(n);
  stats_.max_bytes = std::max(stats_.max_bytes, static_cast<int64_t>(n));
  stats_.time += absl::Now() - start;
  return absl::MakeConstSpan(buffer_.data() + kLength, n);
}

}  // namespace moeserve
