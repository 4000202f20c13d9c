#ifndef MOESERVE_SERVER_API_HTTP_HTTP_WIRE_H_
#define MOESERVE_SERVER_API_HTTP_HTTP_WIRE_H_

// HTTP/1.1 response bytes: status lines, heads, chunked framing. Pure functions.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/api/http/http_message.h"

namespace moeserve::api {

// "Not Found" for 404, ...; "Status" for codes it does not know.
const char* HttpReason(int status);

// The response's head and body; Content-Length set; `keep_alive` picks the Connection header.
// `head_only` (HEAD requests) leaves the body out but keeps its length.
std::string SerializeResponse(const HttpResponse& response, bool keep_alive, bool head_only);

// The head of a chunked response.
std::string SerializeStreamHead(int status, absl::string_view content_type,
                                const std::vector<std::pair<std::string, std::string>>& headers, bool keep_alive);

// One chunk of a chunked body ("" is not a chunk: nothing); the last chunk.
std::string Chunk(absl::string_view data);
inline constexpr absl::string_view kLastChunk = "0\r\n\r\n";

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_HTTP_HTTP_WIRE_H_
