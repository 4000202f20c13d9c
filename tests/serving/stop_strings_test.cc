#include "server/serving/stop_strings.h"

#include "gtest/gtest.h"

namespace moeserve::serving {
namespace {

TEST(StopStringMatcherTest, NoStopsPassesTextThrough) {
  StopStringMatcher m({});
  EXPECT_EQ(m.Feed("abc"), "abc");
  EXPECT_EQ(m.Flush(), "");
  EXPECT_FALSE(m.matched());
}

TEST(StopStringMatcherTest, TruncatesBeforeTheMatch) {
  StopStringMatcher m({"END"});
  EXPECT_EQ(m.Feed("hello E"), "hello ");  // "E" may start "END"
  EXPECT_EQ(m.Feed("N"), "");
  EXPECT_EQ(m.Feed("D and more"), "");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.matched_string(), "END");
  EXPECT_EQ(m.Feed("x"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringMatcherTest, ReleasesHeldTextWhenThePrefixBreaks) {
  StopStringMatcher m({"END"});
  EXPECT_EQ(m.Feed("EN"), "");
  EXPECT_EQ(m.Feed("x"), "ENx");
  EXPECT_EQ(m.Feed("E"), "");
  EXPECT_EQ(m.Flush(), "E");
  EXPECT_FALSE(m.matched());
}

TEST(StopStringMatcherTest, EarliestMatchWinsAcrossStops) {
  StopStringMatcher m({"world", "lo w", ""});
  EXPECT_EQ(m.Feed("hello world"), "hel");
  EXPECT_EQ(m.matched_string(), "lo w");
}

TEST(StopStringMatcherTest, MatchInsideOneDelta) {
  StopStringMatcher m({"\n\n"});
  EXPECT_EQ(m.Feed("line one\n"), "line one");
  EXPECT_EQ(m.Feed("\nline two"), "");
  EXPECT_TRUE(m.matched());
}

TEST(StopStringMatcherTest, HoldsTheLongestPossiblePrefix) {
  StopStringMatcher m({"abcab"});
  EXPECT_EQ(m.Feed("xxabca"), "xx");  // "abca" may still become "abcab"
  EXPECT_EQ(m.Feed("c"), "abcac");    // no suffix of "abcac" starts "abcab"
  EXPECT_EQ(m.Feed("ab"), "");
  EXPECT_EQ(m.Flush(), "ab");
}

}  // namespace
}  // namespace moeserve::serving
