// `moeserve serve` as its own process, driven by moeserve-cli: the streamed completion equals
// `moeserve generate`, errors exit non-zero with the status, API keys, and SIGTERM drains and
// exits 0.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model/llama2c_checkpoint.h"
#include "server/tokenizer/llama2c_vocab.h"
#include "tests/test_util.h"

namespace moeserve::testing {
namespace {

using ::testing::HasSubstr;

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv to completion, capturing stdout and stderr.
RunResult RunProgram(const std::vector<std::string>& argv) {
  const std::string out_path = MakeTempDir("cli_out").string() + "/out";
  const std::string err_path = out_path + ".err";
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const std::string& p) {
    std::string s;
    FILE* f = std::fopen(p.c_str(), "rb");
    if (f == nullptr) return s;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) s.append(buf, n);
    std::fclose(f);
    return s;
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

// A `moeserve serve` child on a free port; reads the port from its "serving on" line.
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> extra) {
    err_path_ = MakeTempDir("serve_err").string() + "/stderr";
    pid_ = fork();
    if (pid_ == 0) {
      const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(err, 2);
      std::vector<std::string> argv = {MOESERVE_BIN, "serve",          "--port", "0",         "--http-port",
                                       "0",          "--metrics-port", "0",      "--threads", "2"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      absl::SleepFor(absl::Milliseconds(50));
      const std::string err = Stderr();
      const size_t at = err.find("serving on 127.0.0.1:");
      if (at != std::string::npos) {
        std::string rest = err.substr(at + 21);
        rest = rest.substr(0, rest.find_first_not_of("0123456789"));
        (void)absl::SimpleAtoi(rest, &port_);
      }
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  int port() const { return port_; }
  std::string addr() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string Stderr() const {
    std::string s;
    FILE* f = std::fopen(err_path_.c_str(), "rb");
    if (f == nullptr) return s;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) s.append(buf, n);
    std::fclose(f);
    return s;
  }
  // Sends `sig` and returns the exit code (or 128 + signal).
  int SignalAndWait(int sig) {
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string err_path_;
};

std::string StoriesDir() {
  static std::string* dir = nullptr;
  if (dir != nullptr) return *dir;
  dir = new std::string;
  const auto src = TestDataDir() / "models" / "stories260K";
  if (!std::filesystem::exists(src / "stories260K.bin")) return *dir;
  const std::string out = MakeTempDir("cli_stories").string();
  if (!ConvertLlama2cCheckpoint((src / "stories260K.bin").string(), out).ok()) return *dir;
  auto vocab = ConvertLlama2cVocab((src / "tok512.bin").string());
  if (!vocab.ok() || !WriteConvertedTokenizer(*vocab, out).ok()) return *dir;
  *dir = out;
  return *dir;
}

TEST(CliE2eTest, StreamedCompletionEqualsMoeserveGenerate) {
  const std::string model = StoriesDir();
  if (model.empty()) GTEST_SKIP() << "shared data models/stories260K not found";
  ServeProcess serve({"--model", model});
  ASSERT_GT(serve.port(), 0) << serve.Stderr();
  const RunResult cli =
      RunProgram({MOESERVE_CLI_BIN, "--addr", serve.addr(), "--max-tokens", "80", "--usage", "Once upon a time"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  const RunResult gen = RunProgram({MOESERVE_BIN, "generate", "--model", model, "--threads", "2", "--max-tokens", "80",
                                    "--prompt", "Once upon a time"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_EQ(cli.out, gen.out);
  EXPECT_THAT(cli.out, ::testing::StartsWith(", there was a little girl named Lily."));
  EXPECT_THAT(cli.err, HasSubstr("prompt_tokens="));
  EXPECT_EQ(serve.SignalAndWait(SIGTERM), 0) << serve.Stderr();
}

TEST(CliE2eTest, ErrorsExitNonZeroWithTheStatus) {
  ServeProcess serve({"--model", (FixturesDir() / "models" / "llama").string()});
  ASSERT_GT(serve.port(), 0) << serve.Stderr();
  const RunResult bad = RunProgram({MOESERVE_CLI_BIN, "--addr", serve.addr(), "--token-ids", "1,2,9999"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("INVALID_ARGUMENT: token_ids.ids[2] = 9999 is outside the vocabulary"));
  const RunResult ok = RunProgram(
      {MOESERVE_CLI_BIN, "--addr", serve.addr(), "--token-ids", "1,2,3", "--max-tokens", "5", "--ignore-eos"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  const RunResult info = RunProgram({MOESERVE_CLI_BIN, "--addr", serve.addr(), "--model-info"});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("architecture: LlamaForCausalLM"));
  EXPECT_THAT(info.out, HasSubstr("model_id: llama"));
  EXPECT_EQ(serve.SignalAndWait(SIGINT), 0) << serve.Stderr();
}

TEST(CliE2eTest, ApiKeyAndHealth) {
  const std::string keys = MakeTempDir("cli_keys").string() + "/keys";
  FILE* f = std::fopen(keys.c_str(), "w");
  std::fputs("k-123\n", f);
  std::fclose(f);
  ServeProcess serve({"--model", (FixturesDir() / "models" / "llama").string(), "--api-key-file", keys});
  ASSERT_GT(serve.port(), 0) << serve.Stderr();
  const std::vector<std::string> gen = {MOESERVE_CLI_BIN, "--addr",       serve.addr(), "--token-ids",
                                        "1,2,3",          "--max-tokens", "3"};
  RunResult r = RunProgram(gen);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("UNAUTHENTICATED"));
  auto with_key = gen;
  with_key.insert(with_key.end(), {"--api-key", "wrong"});
  EXPECT_EQ(RunProgram(with_key).exit_code, 1);
  with_key.back() = "k-123";
  r = RunProgram(with_key);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const RunResult health = RunProgram({MOESERVE_CLI_BIN, "--addr", serve.addr(), "--health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");
  EXPECT_EQ(serve.SignalAndWait(SIGTERM), 0);
  EXPECT_THAT(serve.Stderr(), HasSubstr("received SIGTERM"));
  // Nothing about request content is logged without --log-requests.
  EXPECT_THAT(serve.Stderr(), ::testing::Not(HasSubstr("1,2,3")));
}

TEST(CliE2eTest, UnreachableServerFailsCleanly) {
  const RunResult r = RunProgram({MOESERVE_CLI_BIN, "--addr", "127.0.0.1:1", "--timeout", "2", "hello"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::AnyOf(HasSubstr("UNAVAILABLE"), HasSubstr("DEADLINE_EXCEEDED")));
}

}  // namespace
}  // namespace moeserve::testing
