// OutputConstraint: one sample's masks and advance over a byte vocabulary with a stop id and
// <think>/</think> tokens: the grammar's masks, stop ids only where the output is complete, the
// reasoning block unconstrained (but not ending the output), and the masks of draft tokens equal
// to the masks after accepting them one by one, with the state unchanged.

#include "server/structured/output_constraint.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/structured/constraint_compiler.h"

namespace moeserve::structured {
namespace {

constexpr int32_t kStop = 256, kThink = 257, kEndThink = 258, kSize = 259;

std::shared_ptr<const TokenVocabulary> Vocab() {
  std::vector<std::optional<std::string>> bytes(kSize);
  for (int i = 0; i < 256; ++i) bytes[i] = std::string(1, static_cast<char>(i));
  return *TokenVocabulary::Create(std::move(bytes), {.mask_size = kSize, .stop_ids = {kStop}});
}

std::shared_ptr<const OutputConstraintSpec> Spec(const std::string& regex, bool reasoning = false,
                                                 bool starts_in_reasoning = false, std::vector<int32_t> stop_ids = {}) {
  ConstraintCompiler compiler(Vocab());
  auto grammar = compiler.Compile({.kind = Constraint::Kind::kRegex, .value = regex});
  EXPECT_TRUE(grammar.ok()) << grammar.status();
  auto spec = std::make_shared<OutputConstraintSpec>();
  spec->grammar = *grammar;
  if (reasoning) spec->reasoning = {.start = kThink, .end = kEndThink};
  spec->starts_in_reasoning = starts_in_reasoning;
  spec->stop_token_ids = std::move(stop_ids);
  return spec;
}

bool Allowed(const std::vector<uint32_t>& mask, int32_t id) { return (mask[id >> 5] >> (id & 31)) & 1u; }

std::vector<uint32_t> Mask(OutputConstraint& c) {
  std::vector<uint32_t> mask(c.mask_words());
  c.FillMasks({}, mask.data());
  return mask;
}

TEST(OutputConstraintTest, GrammarMaskAndStopIds) {
  OutputConstraint c(Spec("ab?", false, false, {'z'}), 0);
  std::vector<uint32_t> m = Mask(c);
  EXPECT_TRUE(Allowed(m, 'a'));
  EXPECT_FALSE(Allowed(m, 'b'));
  EXPECT_FALSE(Allowed(m, kStop));
  EXPECT_FALSE(Allowed(m, 'z'));  // the request's stop id: not before the output is complete
  EXPECT_FALSE(Allowed(m, kThink));
  EXPECT_FALSE(c.Accept('b').ok());
  ASSERT_TRUE(c.Accept('a').ok());
  EXPECT_TRUE(c.CanEnd());
  m = Mask(c);
  EXPECT_TRUE(Allowed(m, 'b'));
  EXPECT_TRUE(Allowed(m, kStop));
  EXPECT_TRUE(Allowed(m, 'z'));
  EXPECT_TRUE(c.Accept('z').ok());  // ends the output
}

// min_tokens holds the stops back while the grammar can go on, and gives way where it can only end.
TEST(OutputConstraintTest, MinTokensYieldsToAGrammarThatCanOnlyEnd) {
  auto spec = std::make_shared<OutputConstraintSpec>(*Spec("a+|bc", false, false, {'z'}));
  spec->min_tokens = 5;
  OutputConstraint c(spec, 0);
  ASSERT_TRUE(c.Accept('a').ok());
  std::vector<uint32_t> m = Mask(c);
  EXPECT_TRUE(Allowed(m, 'a'));  // complete, but it can go on: min_tokens holds the stops back
  EXPECT_FALSE(Allowed(m, kStop));
  EXPECT_FALSE(Allowed(m, 'z'));
  OutputConstraint d(spec, 0);
  ASSERT_TRUE(d.Accept('b').ok());
  ASSERT_TRUE(d.Accept('c').ok());
  m = Mask(d);  // "bc" can only end: the grammar wins over min_tokens (2 < 5)
  EXPECT_TRUE(Allowed(m, kStop));
  EXPECT_TRUE(Allowed(m, 'z'));
  EXPECT_FALSE(Allowed(m, 'a'));
  EXPECT_TRUE(d.Accept(kStop).ok());
  // ignore_eos: EOS is not a stop, min_tokens leaves it to the grammar (allowed once complete).
  spec->ignore_eos = true;
  OutputConstraint e(spec, 0);
  ASSERT_TRUE(e.Accept('a').ok());
  m = Mask(e);
  EXPECT_TRUE(Allowed(m, kStop));
  EXPECT_FALSE(Allowed(m, 'z'));
  // From min_tokens on, the stops follow the grammar alone.
  spec->ignore_eos = false;
  spec->min_tokens = 2;
  OutputConstraint f(spec, 0);
  ASSERT_TRUE(f.Accept('a').ok());
  EXPECT_FALSE(Allowed(Mask(f), kStop));
  ASSERT_TRUE(f.Accept('a').ok());
  EXPECT_TRUE(Allowed(Mask(f), kStop));
}

TEST(OutputConstraintTest, ReasoningBlockIsFreeButCannotEndTheOutput) {
  OutputConstraint c(Spec("[0-9]", /*reasoning=*/true), 0);
  std::vector<uint32_t> m = Mask(c);
  EXPECT_TRUE(Allowed(m, kThink));  // the model may open the block with its first token
  EXPECT_TRUE(Allowed(m, '7'));
  EXPECT_FALSE(Allowed(m, 'x'));
  ASSERT_TRUE(c.Accept(kThink).ok());
  EXPECT_TRUE(c.in_reasoning());
  m = Mask(c);
  EXPECT_TRUE(Allowed(m, 'x'));
  EXPECT_TRUE(Allowed(m, kEndThink));
  EXPECT_FALSE(Allowed(m, kStop));
  EXPECT_FALSE(c.CanEnd());
  ASSERT_TRUE(c.Accept('x').ok());
  ASSERT_TRUE(c.Accept(kEndThink).ok());
  EXPECT_FALSE(c.in_reasoning());
  m = Mask(c);
  EXPECT_FALSE(Allowed(m, kThink));  // only as the first token
  EXPECT_FALSE(Allowed(m, 'x'));
  ASSERT_TRUE(c.Accept('4').ok());
  EXPECT_TRUE(c.CanEnd());
}

TEST(OutputConstraintTest, PromptCanOpenTheReasoningBlock) {
  OutputConstraint c(Spec("[0-9]", true, /*starts_in_reasoning=*/true), 0);
  EXPECT_TRUE(c.in_reasoning());
  EXPECT_TRUE(Allowed(Mask(c), 'q'));
  ASSERT_TRUE(c.Accept('q').ok());
  ASSERT_TRUE(c.Accept(kEndThink).ok());
  EXPECT_FALSE(Allowed(Mask(c), 'q'));
}

TEST(OutputConstraintTest, DraftMasksEqualStepwiseMasksAndLeaveTheStateUnchanged) {
  const auto spec = Spec("(ab|ac)+d", true);
  const std::vector<int32_t> drafts = {kThink, 'n', kEndThink, 'a', 'c', 'a', 'b', 'd'};
  OutputConstraint c(spec, static_cast<int32_t>(drafts.size()));
  const size_t words = c.mask_words();
  std::vector<uint32_t> masks((drafts.size() + 1) * words);
  c.FillMasks(drafts, masks.data());
  OutputConstraint stepwise(spec, 0);
  for (size_t j = 0; j <= drafts.size(); ++j) {
    const std::vector<uint32_t> want = Mask(stepwise);
    EXPECT_EQ(std::vector<uint32_t>(masks.begin() + j * words, masks.begin() + (j + 1) * words), want) << "row " << j;
    if (j < drafts.size()) {
      ASSERT_TRUE(stepwise.Accept(drafts[j]).ok()) << j;
    }
  }
  // Unchanged: the first mask again, and the first draft still accepted.
  EXPECT_EQ(Mask(c), std::vector<uint32_t>(masks.begin(), masks.begin() + words));
  EXPECT_TRUE(c.Accept(kThink).ok());
}

TEST(OutputConstraintTest, MasksAfterARefusedDraftRepeatTheLastOne) {
  OutputConstraint c(Spec("abc"), 3);
  const size_t words = c.mask_words();
  std::vector<uint32_t> masks(4 * words);
  const std::vector<int32_t> drafts = {'a', 'x', 'c'};
  c.FillMasks(drafts, masks.data());
  const std::vector<uint32_t> row1(masks.begin() + words, masks.begin() + 2 * words);
  EXPECT_TRUE(Allowed(row1, 'b'));
  EXPECT_FALSE(Allowed(row1, 'x'));  // the draft is refused at row 1
  EXPECT_EQ(std::vector<uint32_t>(masks.begin() + 2 * words, masks.begin() + 3 * words), row1);
  EXPECT_EQ(std::vector<uint32_t>(masks.begin() + 3 * words, masks.end()), row1);
  EXPECT_TRUE(c.Accept('a').ok());
  EXPECT_TRUE(c.Accept('b').ok());
}

}  // namespace
}  // namespace moeserve::structured
