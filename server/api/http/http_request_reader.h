#ifndef MOESERVE_SERVER_API_HTTP_HTTP_REQUEST_READER_H_
#define MOESERVE_SERVER_API_HTTP_HTTP_REQUEST_READER_H_

// Reading one HTTP/1.1 request: Beast's parser with the server's size limits, the parsed message
// as an HttpRequest, and the error response a failed read gets. A connection reads with these
// from its socket (http_connection.cc); ReadHttpRequest reads from bytes in memory, for tests and
// the HTTP fuzz target. Pure functions; safe from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "boost/beast/http/message.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/string_body.hpp"
#include "boost/system/error_code.hpp"
#include "server/api/http/http_message.h"
#include "server/api/http/http_server.h"

namespace moeserve::api::http_internal {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// Sets options.max_header_bytes and max_body_bytes on `parser` (before it reads).
void ApplyLimits(const HttpServerOptions& options, RequestParser* parser);

// The handler's view of a parsed message: method, target, path (the target without its query),
// headers with lower-case names, body.
HttpRequest ToHttpRequest(boost::beast::http::request<boost::beast::http::string_body> message);

// The error response's status and message for a read that failed with the parser's `ec`: 413 over
// the body limit, 431 over the header limit, 400 for a malformed request; nullopt for the errors
// of a connection that ended (end of stream, partial message) and for errors not the parser's.
std::optional<std::pair<int, std::string>> ReadErrorResponse(const boost::system::error_code& ec,
                                                             const HttpServerOptions& options);

// One request read from `bytes` as a connection reads it from its socket. `error` is set (and
// `request` not) when the read fails with an error response; neither is set when `bytes` end
// before the request does.
struct HttpReadResult {
  std::optional<HttpRequest> request;
  bool keep_alive = false;
  std::optional<std::pair<int, std::string>> error;
  size_t consumed = 0;  // bytes of the request (a pipelined next one starts there)
};
HttpReadResult ReadHttpRequest(std::string_view bytes, const HttpServerOptions& options);

}  // namespace moeserve::api::http_internal

#endif  // MOESERVE_SERVER_API_HTTP_HTTP_REQUEST_READER_H_
