#include "server/tokenizer/unicode.h"

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(UnicodeTest, ValidatesUtf8) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("abc \xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_EQ(FindInvalidUtf8("ab\xFF"), 2u);
}

TEST(UnicodeTest, CompletePrefixHoldsBackPartialCharacter) {
  EXPECT_EQ(CompleteUtf8Prefix("ab"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xE4\xB8"), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xE4\xB8\xAD"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xF0\x9F\x98"), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xFF"), 2u);  // ill-formed, never completes
}

TEST(UnicodeTest, LossyReplacesMaximalSubparts) {
  EXPECT_EQ(Utf8Lossy("a\xE4\xB8z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(Utf8Lossy("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xEF\xBF\xBD"), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace moeserve
