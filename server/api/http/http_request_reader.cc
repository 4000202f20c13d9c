#include "server/api/http/http_request_reader.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/buffer.hpp"
#include "boost/beast/http/error.hpp"

namespace moeserve::api::http_internal {

namespace http = boost::beast::http;

void ApplyLimits(const HttpServerOptions& options, RequestParser* parser) {
  parser->header_limit(static_cast<uint32_t>(options.max_header_bytes));
  parser->body_limit(static_cast<uint64_t>(options.max_body_bytes));
}

HttpRequest ToHttpRequest(http::request<http::string_body> message) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.path = request.target.substr(0, request.target.find('?'));
  for (const auto& field : message) {
    request.headers.emplace_back(
        absl::AsciiStrToLower(absl::string_view(field.name_string().data(), field.name_string().size())),
        std::string(field.value()));
  }
  request.body = std::move(message.body());
  return request;
}

std::optional<std::pair<int, std::string>> ReadErrorResponse(const boost::system::error_code& ec,
                                                             const HttpServerOptions& options) {
  if (ec == http::error::body_limit) {
    return std::make_pair(413, absl::StrCat("the request body is larger than the limit of ", options.max_body_bytes,
                                            " bytes (--max-message-bytes)"));
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return std::make_pair(
        431, absl::StrCat("the request header is larger than the limit of ", options.max_header_bytes, " bytes"));
  }
  if (ec.category() == make_error_code(http::error::bad_method).category() && ec != http::error::end_of_stream &&
      ec != http::error::partial_message) {
    return std::make_pair(400, absl::StrCat("malformed HTTP request: ", ec.message()));
  }
  return std::nullopt;
}

HttpReadResult ReadHttpRequest(std::string_view bytes, const HttpServerOptions& options) {
  HttpReadResult result;
  RequestParser parser;
  ApplyLimits(options, &parser);
  // Beast's parser wants the whole header in one buffer (as the connection's flat buffer gives
  // it), then takes the body in pieces. A put that makes no progress needs bytes there are not.
  while (!parser.is_done()) {
    boost::system::error_code ec;
    size_t n = 0;
    if (result.consumed < bytes.size()) {
      n = parser.put(boost::asio::buffer(bytes.data() + result.consumed, bytes.size() - result.consumed), ec);
      result.consumed += n;
    }
    if (ec && ec != http::error::need_more) {
      result.error = ReadErrorResponse(ec, options);
      if (!result.error.has_value()) result.error = std::make_pair(400, "malformed HTTP request: " + ec.message());
      return result;
    }
    if (n > 0) continue;
    // The bytes end here: a connection would wait for more, or, at the end of the stream, take a
    // body that runs to it (no bytes at all: the client closed before a request).
    if (!parser.got_some()) return result;
    parser.put_eof(ec);
    if (ec || !parser.is_done()) {
      result.error = ReadErrorResponse(ec, options);
      return result;
    }
  }
  result.keep_alive = parser.get().keep_alive();
  result.request = ToHttpRequest(parser.release());
  return result;
}

}  // namespace moeserve::api::http_internal
