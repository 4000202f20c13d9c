#include "server/api/http/http_wire.h"

#include "absl/strings/str_cat.h"

namespace moeserve::api {
namespace {

std::string Head(int status, absl::string_view content_type,
                 const std::vector<std::pair<std::string, std::string>>& headers, bool keep_alive) {
  std::string out = absl::StrCat("HTTP/1.1 ", status, " ", HttpReason(status),
                                 "\r\nServer: moeserve\r\nContent-Type: ", content_type, "\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
  absl::StrAppend(&out, "Connection: ", keep_alive ? "keep-alive" : "close", "\r\n");
  return out;
}

}  // namespace

const char* HttpReason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
  }
}

std::string SerializeResponse(const HttpResponse& response, bool keep_alive, bool head_only) {
  std::string out = Head(response.status, response.content_type, response.headers, keep_alive);
  absl::StrAppend(&out, "Content-Length: ", response.body.size(), "\r\n\r\n");
  if (!head_only) out += response.body;
  return out;
}

std::string SerializeStreamHead(int status, absl::string_view content_type,
                                const std::vector<std::pair<std::string, std::string>>& headers, bool keep_alive) {
  return absl::StrCat(Head(status, content_type, headers, keep_alive), "Transfer-Encoding: chunked\r\n\r\n");
}

std::string Chunk(absl::string_view data) {
  if (data.empty()) return "";
  return absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n");
}

}  // namespace moeserve::api
