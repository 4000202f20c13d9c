#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "moeserve/v1/inference.pb.h"
#include "server/api/request_convert.h"
#include "tests/fuzz/fuzz_time.h"
#include "tests/fuzz/grpc_request_fuzz.h"
#include "tests/fuzz/request_fuzz.h"

namespace moeserve::fuzz {
namespace {

constexpr char kTarget[] = "grpc_request_fuzz";
constexpr size_t kMaxInputBytes = size_t{1} << 16;

// The fields of a GenerateRequest an error may name.
const std::vector<std::string>& Fields() {
  static const std::vector<std::string>* const fields = new std::vector<std::string>{
      "request_id", "input", "text", "token_ids.ids", "messages.messages", "sampling.", "cache_salt", "priority"};
  return *fields;
}

// Text-format errors are expected (most inputs are not text format): not printed.
class QuietErrors final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
};

bool ParseRequest(std::string_view data, v1::GenerateRequest* request) {
  // Nor the parser's complaints about invalid UTF-8 in string fields (those inputs are refused).
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  QuietErrors errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (parser.ParseFromString(std::string(data), request)) return true;
  request->Clear();
  return request->ParseFromArray(data.data(), static_cast<int>(data.size()));
}

}  // namespace

RequestOutcome FuzzGrpcRequest(std::string_view data) {
  if (data.size() > kMaxInputBytes) return RequestOutcome::kIgnored;
  RequestFuzzEnv& env = RequestFuzzEnv::Get(MOESERVE_SOURCE_DIR);
  v1::GenerateRequest proto;
  if (!ParseRequest(data, &proto)) return RequestOutcome::kIgnored;
  const absl::Duration start = ProcessCpuTime();
  absl::StatusOr<serving::ServingRequest> request = api::FromProto(proto);
  const RequestOutcome outcome = request.ok()
                                     ? CheckPrepared(kTarget, env.Prepare(&*request), *request, env.limits(), Fields())
                                     : CheckRefusal(kTarget, request.status(), Fields());
  CheckTime(kTarget, start);
  return outcome;
}

}  // namespace moeserve::fuzz
