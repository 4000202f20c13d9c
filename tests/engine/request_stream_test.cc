#include "server/engine/request_stream.h"

#include <thread>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

RequestOutput Delta(std::vector<int32_t> ids, bool finished = false, int32_t index = 0, bool request_finished = true) {
  RequestOutput d;
  d.index = index;
  d.token_ids = std::move(ids);
  d.finished = finished;
  d.request_finished = finished && request_finished;
  if (finished) d.finish_reason = FinishReason::kLength;
  d.usage.completion_tokens = 9;
  return d;
}

TEST(RequestStreamTest, NextMergesPendingDeltas) {
  RequestStream s(7);
  EXPECT_FALSE(s.Next(absl::ZeroDuration()).has_value());
  s.Push(Delta({1}));
  s.Push(Delta({2, 3}));
  auto d = s.Next(absl::ZeroDuration());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->token_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(d->finished);
  s.Push(Delta({4}, true));
  EXPECT_TRUE(s.finished());
  d = s.Next(absl::ZeroDuration());
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->finished);
  EXPECT_EQ(d->finish_reason, FinishReason::kLength);
  EXPECT_EQ(d->usage.completion_tokens, 9);
  EXPECT_FALSE(s.Next().has_value());  // drained: returns at once, even without a timeout
}

TEST(RequestStreamTest, NextBlocksUntilAnotherThreadPushes) {
  RequestStream s(1);
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    s.Push(Delta({5}, true));
  });
  RequestOutput all = s.WaitForCompletion();
  writer.join();
  EXPECT_EQ(all.token_ids, std::vector<int32_t>{5});
  EXPECT_EQ(all.request_id, 1u);
  EXPECT_TRUE(all.finished);
}

TEST(RequestStreamTest, CallbackGetsEachDelta) {
  std::vector<RequestOutput> seen;
  RequestStream s(2, [&](const RequestOutput& d) { seen.push_back(d); });
  s.Push(Delta({1}));
  s.Push(Delta({2}, true));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].token_ids, std::vector<int32_t>{2});
  EXPECT_TRUE(s.finished());
}

TEST(RequestStreamTest, SamplesAreMergedSeparatelyAndTheLastDeltaEndsTheStream) {
  RequestStream s(3);
  s.Push(Delta({1}, false, /*index=*/0));
  s.Push(Delta({7}, false, /*index=*/1));
  s.Push(Delta({2}, true, /*index=*/0, /*request_finished=*/false));
  EXPECT_FALSE(s.finished());
  auto d = s.Next(absl::ZeroDuration());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->index, 0);
  EXPECT_EQ(d->token_ids, (std::vector<int32_t>{1, 2}));
  EXPECT_TRUE(d->finished);
  EXPECT_FALSE(d->request_finished);
  s.Push(Delta({8}, true, /*index=*/1));
  EXPECT_TRUE(s.finished());
  d = s.Next(absl::ZeroDuration());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->index, 1);
  EXPECT_EQ(d->token_ids, (std::vector<int32_t>{7, 8}));
  EXPECT_TRUE(d->request_finished);
  EXPECT_FALSE(s.Next().has_value());
}

TEST(RequestStreamTest, RequestFinishedIsOnTheDeltaReturnedLast) {
  RequestStream s(4);
  s.Push(Delta({7}, false, /*index=*/1));
  s.Push(Delta({1}, true, /*index=*/0));  // sample 0 ends the request
  std::vector<RequestOutput> all = s.WaitForCompletions();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].token_ids, std::vector<int32_t>{1});
  EXPECT_EQ(all[1].token_ids, std::vector<int32_t>{7});
  EXPECT_TRUE(all[0].request_finished || all[1].request_finished);
}

TEST(FinishReasonTest, Names) {
  EXPECT_STREQ(FinishReasonName(FinishReason::kStop), "stop");
  EXPECT_STREQ(FinishReasonName(FinishReason::kLength), "length");
  EXPECT_STREQ(FinishReasonName(FinishReason::kAbort), "abort");
  EXPECT_STREQ(FinishReasonName(FinishReason::kError), "error");
}

}  // namespace
}  // namespace moeserve
