#include "server/spec/ngram_proposer.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moeserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<int32_t> Propose(const NgramProposer& p, std::vector<int32_t> tokens, int32_t k) {
  std::vector<int32_t> drafts = {99};  // cleared by Propose
  const int32_t n = p.Propose(tokens, k, &drafts);
  EXPECT_EQ(n, static_cast<int32_t>(drafts.size()));
  return drafts;
}

TEST(NgramProposerTest, RejectsBadOptionsNamingTheFlag) {
  EXPECT_THAT(NgramProposer::Create({.min_n = 0, .max_n = 3}).status().message(), HasSubstr("--ngram-min"));
  EXPECT_THAT(NgramProposer::Create({.min_n = 3, .max_n = 2}).status().message(), HasSubstr("--ngram-max"));
  EXPECT_THAT(NgramProposer::Create({.min_n = 1, .max_n = 65}).status().message(), HasSubstr("--ngram-max"));
  EXPECT_TRUE(NgramProposer::Create({.min_n = 2, .max_n = 2}).ok());
}

TEST(NgramProposerTest, ProposesWhatFollowedTheEarlierOccurrence) {
  const NgramProposer p = *NgramProposer::Create({.min_n = 1, .max_n = 3});
  // "... 5 6 7 8 9 ... 5 6" -> 7 8 9
  EXPECT_THAT(Propose(p, {1, 5, 6, 7, 8, 9, 2, 5, 6}, 3), ElementsAre(7, 8, 9));
  // Fewer tokens follow than asked for.
  EXPECT_THAT(Propose(p, {1, 5, 6, 7, 5, 6}, 5), ElementsAre(7, 5, 6));
  EXPECT_THAT(Propose(p, {1, 5, 6, 7, 5, 6}, 1), ElementsAre(7));
  EXPECT_THAT(Propose(p, {1, 5, 6, 7, 5, 6}, 0), IsEmpty());
}

TEST(NgramProposerTest, LongestMatchWinsThenTheMostRecent) {
  const NgramProposer p = *NgramProposer::Create({.min_n = 1, .max_n = 4});
  // Suffix "3 4": "3 4 10" matches two tokens; "4 20" (more recent) matches only one.
  EXPECT_THAT(Propose(p, {3, 4, 10, 11, 4, 20, 21, 3, 4}, 2), ElementsAre(10, 11));
  // Two occurrences of the same length: the most recent one.
  EXPECT_THAT(Propose(p, {7, 1, 2, 8, 7, 3, 4, 9, 7}, 2), ElementsAre(3, 4));
  // Matches are capped at max_n: both occurrences of "3 4" match it fully, the later wins.
  const NgramProposer short_n = *NgramProposer::Create({.min_n = 1, .max_n = 2});
  EXPECT_THAT(Propose(short_n, {9, 3, 4, 50, 8, 3, 4, 60, 3, 4}, 1), ElementsAre(60));
}

TEST(NgramProposerTest, NeedsAtLeastMinNTokens) {
  const NgramProposer p = *NgramProposer::Create({.min_n = 2, .max_n = 3});
  // Only a 1-token match ("6"): nothing.
  EXPECT_THAT(Propose(p, {6, 7, 8, 9, 6}, 2), IsEmpty());
  EXPECT_THAT(Propose(p, {5, 6, 7, 8, 5, 6}, 2), ElementsAre(7, 8));
  EXPECT_THAT(Propose(p, {}, 2), IsEmpty());
  EXPECT_THAT(Propose(p, {1, 1}, 2), IsEmpty());  // one token before the suffix
  EXPECT_THAT(Propose(p, {1, 1, 1}, 2), ElementsAre(1));
}

TEST(NgramProposerTest, RepeatingTextIsContinued) {
  const NgramProposer p = *NgramProposer::Create({.min_n = 1, .max_n = 4});
  EXPECT_THAT(Propose(p, {4, 4, 4, 4}, 3), ElementsAre(4));
  EXPECT_THAT(Propose(p, {1, 2, 3, 1, 2, 3, 1, 2}, 4), ElementsAre(3, 1, 2));
}

}  // namespace
}  // namespace moeserve
