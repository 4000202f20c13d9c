#ifndef MOESERVE_SERVER_COMMON_LOGGING_H_
#define MOESERVE_SERVER_COMMON_LOGGING_H_

// Minimal leveled logging to stderr and fatal checks. The server logs only what an operator asked
// for: the level is set once at start-up (default kWarning for tools, kInfo for `serve`), and no
// request content is ever logged by the server itself.
//
//   MS_LOG(INFO) << "loaded " << n << " tensors";
//   MS_CHECK(ptr != nullptr) << "why";   // aborts with file:line when false (programming errors only)

#include <sstream>
#include <string_view>

namespace moeserve {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

// Thread-safe. Messages below the level are discarded.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();
bool ParseLogLevel(std::string_view text, LogLevel* level);

namespace internal {

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();  // writes the line; aborts for kFatal
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Swallows the stream expression when the level is disabled.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal
}  // namespace moeserve

#define MS_LOG_LEVEL_DEBUG ::moeserve::LogLevel::kDebug
#define MS_LOG_LEVEL_INFO ::moeserve::LogLevel::kInfo
#define MS_LOG_LEVEL_WARNING ::moeserve::LogLevel::kWarning
#define MS_LOG_LEVEL_ERROR ::moeserve::LogLevel::kError
#define MS_LOG_LEVEL_FATAL ::moeserve::LogLevel::kFatal

#define MS_LOG(severity)                                \
  (MS_LOG_LEVEL_##severity < ::moeserve::MinLogLevel()) \
      ? (void)0                                         \
      : ::moeserve::internal::LogVoidify() &            \
            ::moeserve::internal::LogMessage(MS_LOG_LEVEL_##severity, __FILE__, __LINE__).stream()

#define MS_CHECK(cond)                                                                                     \
  (cond) ? (void)0                                                                                         \
         : ::moeserve::internal::LogVoidify() &                                                            \
               ::moeserve::internal::LogMessage(::moeserve::LogLevel::kFatal, __FILE__, __LINE__).stream() \
                   << "Check failed: " #cond " "

#endif  // MOESERVE_SERVER_COMMON_LOGGING_H_
