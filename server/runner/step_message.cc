#include "server/runner/step_message.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace moeserve {
namespace {

constexpr uint32_t kMagic = 0x5054534d;  // "MSTP"

template <typename T>
void Put(std::vector<uint8_t>* out, T value) {
  const size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &value, sizeof(T));
}

void PutInts(std::vector<uint8_t>* out, absl::Span<const int32_t> values) {
  const size_t at = out->size();
  out->resize(at + values.size() * sizeof(int32_t));
  if (!values.empty()) std::memcpy(out->data() + at, values.data(), values.size() * sizeof(int32_t));
}

// Bounds-checked reads; the first failure sticks.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}
  template <typename T>
  T Get() {
    T value{};
    if (ok_ && pos_ + sizeof(T) <= bytes_.size()) {
      std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
      pos_ += sizeof(T);
    } else {
      ok_ = false;
    }
    return value;
  }
  // Appends n ints to *out.
  void GetInts(int64_t n, std::vector<int32_t>* out) {
    if (!ok_ || n < 0 || pos_ + static_cast<size_t>(n) * sizeof(int32_t) > bytes_.size()) {
      ok_ = false;
      return;
    }
    const size_t at = out->size();
    out->resize(at + static_cast<size_t>(n));
    if (n > 0) std::memcpy(out->data() + at, bytes_.data() + pos_, static_cast<size_t>(n) * sizeof(int32_t));
    pos_ += static_cast<size_t>(n) * sizeof(int32_t);
  }
  bool ok() const { return ok_; }
  bool done() const { return pos_ == bytes_.size(); }

 private:
  absl::Span<const uint8_t> bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void PutHeader(std::vector<uint8_t>* out, StepKind kind, uint64_t number, uint32_t entries, uint32_t extra) {
  out->clear();
  Put(out, kMagic);
  Put(out, static_cast<uint8_t>(kind));
  Put(out, number);
  Put(out, entries);
  Put(out, extra);
}

}  // namespace

void StepEncoder::EncodeStep(const SchedulerOutput& step, absl::Span<const int32_t> extra_logits_rows,
                             std::vector<uint8_t>* out) {
  PutHeader(out, StepKind::kStep, next_step_++, static_cast<uint32_t>(step.scheduled.size()),
            static_cast<uint32_t>(extra_logits_rows.size()));
  last_block_ids_sent_ = 0;
  scratch_.clear();
  for (const ScheduledRequest& e : step.scheduled) {
    std::vector<int32_t> table;
    size_t kept = 0;
    if (auto it = tables_.find(e.id); it != tables_.end()) {
      std::vector<int32_t>& held = it->second;
      if (held.size() <= e.block_ids.size() && std::equal(held.begin(), held.end(), e.block_ids.begin())) {
        kept = held.size();
        table = std::move(held);
      }
    }
    const auto appended = e.block_ids.subspan(kept);
    table.resize(kept);
    table.insert(table.end(), appended.begin(), appended.end());
    Put(out, static_cast<uint64_t>(e.id));
    Put(out, e.start_position);
    Put(out, e.num_new_tokens);
    MS_CHECK(e.num_draft_tokens >= 0 && e.num_draft_tokens <= kMaxStepDrafts)
        << "request " << e.id << ": " << e.num_draft_tokens << " draft tokens in one step";
    Put(out, static_cast<uint8_t>((e.num_draft_tokens << 1) | (e.samples ? 1 : 0)));
    Put(out, static_cast<int32_t>(kept));
    Put(out, static_cast<int32_t>(appended.size()));
    PutInts(out, e.token_ids.subspan(0, static_cast<size_t>(std::max(e.num_new_tokens, 0))));
    PutInts(out, appended);
    last_block_ids_sent_ += static_cast<int64_t>(appended.size());
    scratch_[e.id] = std::move(table);
  }
  PutInts(out, extra_logits_rows);
  tables_.swap(scratch_);
}

void StepEncoder::EncodeControl(StepKind kind, std::vector<uint8_t>* out) { PutHeader(out, kind, next_step_++, 0, 0); }

absl::Status StepDecoder::Decode(absl::Span<const uint8_t> bytes, DecodedStep* out) {
  Reader r(bytes);
  const uint32_t magic = r.Get<uint32_t>();
  const uint8_t kind = r.Get<uint8_t>();
  const uint64_t number = r.Get<uint64_t>();
  const uint32_t entries = r.Get<uint32_t>();
  const uint32_t extra = r.Get<uint32_t>();
  if (!r.ok() || magic != kMagic) return absl::DataLossError("step message: bad header");
  if (number != next_step_) {
    return absl::DataLossError(absl::StrCat("step message #", number, " arrived, expected #", next_step_));
  }
  ++next_step_;
  if (kind != static_cast<uint8_t>(StepKind::kStep)) {
    if (kind != static_cast<uint8_t>(StepKind::kHeartbeat) && kind != static_cast<uint8_t>(StepKind::kShutdown)) {
      return absl::DataLossError(absl::StrCat("step message: unknown kind ", kind));
    }
    out->kind = static_cast<StepKind>(kind);
    return r.done() ? absl::OkStatus() : absl::DataLossError("step message: trailing bytes");
  }
  out->kind = StepKind::kStep;
  SchedulerOutput& step = out->step;
  step.scheduled.assign(entries, ScheduledRequest());
  step.total_num_scheduled_tokens = 0;
  step.preempted_request_ids.clear();
  step.finished_request_ids.clear();
  step.trimmed_request_ids.clear();
  if (tokens_.size() < entries) tokens_.resize(entries);
  scratch_.clear();
  for (uint32_t i = 0; i < entries && r.ok(); ++i) {
    ScheduledRequest& e = step.scheduled[i];
    e.id = r.Get<uint64_t>();
    e.start_position = r.Get<int32_t>();
    e.num_new_tokens = r.Get<int32_t>();
    const uint8_t flags = r.Get<uint8_t>();
    e.samples = (flags & 1) != 0;
    e.num_draft_tokens = flags >> 1;
    if (r.ok() && e.num_draft_tokens > 0 && (!e.samples || e.num_draft_tokens >= e.num_new_tokens)) {
      return absl::DataLossError(absl::StrCat("step message: request ", e.id, " verifies ", e.num_draft_tokens,
                                              " drafts in ", e.num_new_tokens, " new tokens",
                                              e.samples ? "" : " without sampling"));
    }
    const int32_t kept = r.Get<int32_t>();
    const int32_t appended = r.Get<int32_t>();
    tokens_[i].clear();
    r.GetInts(e.num_new_tokens, &tokens_[i]);
    std::vector<int32_t> table;
    // A table of the last step that this one does not extend lost blocks (rejected drafts): the
    // batch builder must rewrite its row, as on rank 0 (SchedulerOutput::trimmed_request_ids).
    if (auto held = tables_.find(e.id); held != tables_.end() && static_cast<size_t>(kept) < held->second.size()) {
      step.trimmed_request_ids.push_back(e.id);
    }
    if (kept > 0) {
      auto it = tables_.find(e.id);
      if (it == tables_.end() || it->second.size() < static_cast<size_t>(kept)) {
        return absl::DataLossError(
            absl::StrCat("step message: request ", e.id, " keeps ", kept, " blocks this rank does not hold"));
      }
      table = std::move(it->second);
      table.resize(static_cast<size_t>(kept));
    } else if (kept < 0) {
      return absl::DataLossError("step message: negative kept block count");
    }
    r.GetInts(appended, &table);
    if (scratch_.contains(e.id)) {
      return absl::DataLossError(absl::StrCat("step message: request ", e.id, " appears twice"));
    }
    std::vector<int32_t>& stored = scratch_[e.id];
    stored = std::move(table);
    e.token_ids = tokens_[i];
    e.block_ids = stored;  // the vector's buffer stays put when the map moves it
    step.total_num_scheduled_tokens += e.num_new_tokens;
  }
  out->extra_logits_rows.clear();
  r.GetInts(extra, &out->extra_logits_rows);
  if (!r.ok()) return absl::DataLossError("step message: truncated");
  if (!r.done()) return absl::DataLossError("step message: trailing bytes");
  tables_.swap(scratch_);
  return absl::OkStatus();
}

}  // namespace moeserve
