#include "tests/stories260k_util.h"

#include <filesystem>

#include "absl/base/const_init.h"
#include "absl/synchronization/mutex.h"
#include "server/model/llama2c_checkpoint.h"
#include "server/tokenizer/llama2c_vocab.h"
#include "tests/test_util.h"

namespace moeserve::testing {

std::string Stories260kDir() {
  static absl::Mutex mu(absl::kConstInit);
  static std::string* dir = nullptr;
  absl::MutexLock lock(&mu);
  if (dir != nullptr) return *dir;
  dir = new std::string;
  const auto src = TestDataDir() / "models" / "stories260K";
  if (!std::filesystem::exists(src / "stories260K.bin")) return *dir;
  const std::string out = MakeTempDir("stories260k").string();
  if (!ConvertLlama2cCheckpoint((src / "stories260K.bin").string(), out).ok()) return *dir;
  auto vocab = ConvertLlama2cVocab((src / "tok512.bin").string());
  if (!vocab.ok() || !WriteConvertedTokenizer(*vocab, out).ok()) return *dir;
  *dir = out;
  return *dir;
}

}  // namespace moeserve::testing
