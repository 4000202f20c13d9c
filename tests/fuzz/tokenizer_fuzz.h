#ifndef MOESERVE_TESTS_FUZZ_TOKENIZER_FUZZ_H_
#define MOESERVE_TESTS_FUZZ_TOKENIZER_FUZZ_H_

// Bodies of the tokenizer fuzz targets, shared by the libFuzzer entry points
// (tokenizer_*_fuzz_main.cc) and the replay test. Each aborts with a message when an invariant
// breaks; sanitizers catch the rest.

#include <string>
#include <string_view>

namespace moeserve {
class Tokenizer;

namespace fuzz {

// Encode(data): invalid UTF-8 must be rejected; valid text must give ids below vocab_size that
// decode, and an incremental detokenizer fed those ids must reproduce Decode exactly.
void FuzzTokenizerEncode(const Tokenizer& tokenizer, std::string_view data);

// Tokenizer::FromJson(data, ""): any input either loads or returns an error.
void FuzzTokenizerLoad(std::string_view data);

// ChatTemplate parse of arbitrary text (errors must carry a line/column), then, when it parses,
// a render over a fixed conversation bounded by a small evaluation budget. Parsing and rendering
// must take under 2 s of CPU time: a slower input is a failure (the render's own wall-clock limit
// is lifted, so it cannot hide one).
void FuzzChatTemplate(std::string_view data);

// The tokenizer the encode target uses: $MOESERVE_FUZZ_TOKENIZER, else the qwen3 tokenizer in the
// shared data beside the source tree. Aborts when it cannot be loaded.
const Tokenizer& FuzzTokenizer(const std::string& source_dir);

}  // namespace fuzz
}  // namespace moeserve

#endif  // MOESERVE_TESTS_FUZZ_TOKENIZER_FUZZ_H_
