#include "clients/bench/http_client.h"

#include <future>
#include <limits>
#include <optional>
#include <thread>
#include <unordered_set>

#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace moeserve::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Outcome = HttpResponseHandler::Outcome;

absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, 8) == "https://") {
    return absl::InvalidArgumentError("--base-url: https is not supported; use http://");
  }
  if (url.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError("--base-url must start with http:// (got '" + std::string(url) + "')");
  }
  url.remove_prefix(kScheme.size());
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  HttpUrl out;
  if (slash != std::string_view::npos) out.path = std::string(url.substr(slash));
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    out.port = std::string(authority.substr(colon + 1));
    authority = authority.substr(0, colon);
    if (out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos) {
      return absl::InvalidArgumentError("--base-url: bad port '" + out.port + "'");
    }
  }
  if (authority.size() >= 2 && authority.front() == '[' && authority.back() == ']') {
    authority = authority.substr(1, authority.size() - 2);  // [::1]
  }
  if (authority.empty()) return absl::InvalidArgumentError("--base-url: no host");
  out.host = std::string(authority);
  return out;
}

struct HttpClient::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  tcp::resolver::results_type endpoints;
  std::string host_header;
  // The I/O thread's alone:
  std::vector<std::unique_ptr<beast::tcp_stream>> idle;    // kept-alive connections
  std::unordered_set<std::shared_ptr<ExchangeImpl>> open;  // exchanges not yet ended
  std::thread thread;
};

// One request/response on one connection. Lives while an operation or a caller holds it.
class HttpClient::ExchangeImpl : public HttpClient::Exchange, public std::enable_shared_from_this<ExchangeImpl> {
 public:
  ExchangeImpl(Impl* impl, HttpRequest request, HttpResponseHandler* handler)
      : impl_(impl), handler_(handler), timeout_s_(request.timeout_s), deadline_(impl->io) {
    request_.method(request.method == "GET" ? http::verb::get : http::verb::post);
    request_.target(request.target);
    request_.version(11);
    request_.set(http::field::host, impl->host_header);
    request_.set(http::field::user_agent, "moeserve-bench");
    for (const auto& [name, value] : request.headers) request_.set(name, value);
    request_.keep_alive(true);
    request_.body() = std::move(request.body);
    request_.prepare_payload();
  }

  void Cancel() override {
    asio::post(impl_->io, [self = shared_from_this()] { self->End(Outcome::kCancelled, "cancelled"); });
  }

  void Begin() {
    if (done_) return;  // cancelled before it started
    impl_->open.insert(shared_from_this());
    if (timeout_s_ > 0) {
      deadline_.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_)));
      deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec) self->End(Outcome::kTimeout, "timed out");
      });
    }
    if (!impl_->idle.empty()) {
      stream_ = std::move(impl_->idle.back());
      impl_->idle.pop_back();
      reused_ = true;
      Write();
    } else {
      Connect();
    }
  }

  void End(Outcome outcome, const std::string& message) {
    if (done_) return;
    done_ = true;
    auto self = shared_from_this();  // `open` may hold the last reference
    deadline_.cancel();
    if (stream_ != nullptr) {  // not handed back to the pool: close (pending operations abort)
      beast::error_code ignored;
      stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_->socket().close(ignored);
    }
    impl_->open.erase(self);
    handler_->OnEnd(outcome, message, Clock::now());
  }

 private:
  void Connect() {
    stream_ = std::make_unique<beast::tcp_stream>(impl_->io);
    stream_->async_connect(impl_->endpoints, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (self->done_) return;
      if (ec) return self->End(Outcome::kError, "connect: " + ec.message());
      beast::error_code ignored;
      self->stream_->socket().set_option(tcp::no_delay(true), ignored);
      self->Write();
    });
  }

  void Write() {
    http::async_write(*stream_, request_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->done_) return;
      if (ec) return self->Failed(ec, "send");
      self->ReadHead();
    });
  }

  void ReadHead() {
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    http::async_read_header(*stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->done_) return;
      if (ec) return self->Failed(ec, "read");
      self->head_seen_ = true;
      self->handler_->OnHead(self->parser_->get().result_int());
      self->ReadBody();
    });
  }

  void ReadBody() {
    if (done_) return;  // the handler cancelled
    if (parser_->is_done()) return Finish();
    parser_->get().body().data = body_;
    parser_->get().body().size = sizeof(body_);
    http::async_read_some(*stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      const Clock::time_point at = Clock::now();
      if (self->done_) return;
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return self->End(Outcome::kError, "read: " + ec.message());
      const size_t got = sizeof(self->body_) - self->parser_->get().body().size;
      if (got > 0 && !self->handler_->OnBody(std::string_view(self->body_, got), at)) {
        return self->End(Outcome::kCancelled, "aborted by the handler");
      }
      self->ReadBody();
    });
  }

  void Finish() {
    if (parser_->keep_alive() && buffer_.size() == 0) impl_->idle.push_back(std::move(stream_));
    End(Outcome::kComplete, "");
  }

  // A kept-alive connection the server closed while idle fails before any response: retry once.
  void Failed(beast::error_code ec, const char* what) {
    if (reused_ && !head_seen_ && !retried_) {
      retried_ = true;
      reused_ = false;
      beast::error_code ignored;
      stream_->socket().close(ignored);
      stale_.push_back(std::move(stream_));  // its aborted operations may still reference it
      buffer_.clear();
      return Connect();
    }
    End(Outcome::kError, std::string(what) + ": " + ec.message());
  }

  Impl* impl_;
  HttpResponseHandler* handler_;
  double timeout_s_;
  http::request<http::string_body> request_;
  asio::steady_timer deadline_;
  std::unique_ptr<beast::tcp_stream> stream_;
  std::vector<std::unique_ptr<beast::tcp_stream>> stale_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  char body_[16384];
  bool reused_ = false;
  bool head_seen_ = false;
  bool retried_ = false;
  bool done_ = false;
};

HttpClient::HttpClient(HttpUrl url) : url_(std::move(url)), impl_(std::make_unique<Impl>()) {}

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(const HttpUrl& url) {
  std::unique_ptr<HttpClient> client(new HttpClient(url));
  beast::error_code ec;
  tcp::resolver resolver(client->impl_->io);
  client->impl_->endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) {
    return absl::UnavailableError("cannot resolve " + url.host + ":" + url.port + ": " + ec.message());
  }
  const bool ipv6 = url.host.find(':') != std::string::npos;
  client->impl_->host_header = (ipv6 ? "[" + url.host + "]" : url.host) + (url.port == "80" ? "" : ":" + url.port);
  client->impl_->thread = std::thread([impl = client->impl_.get()] { impl->io.run(); });
  return client;
}

HttpClient::~HttpClient() {
  asio::post(impl_->io, [impl = impl_.get()] {
    std::vector<std::shared_ptr<ExchangeImpl>> open(impl->open.begin(), impl->open.end());
    for (const auto& exchange : open) exchange->End(Outcome::kCancelled, "client shut down");
    impl->idle.clear();
  });
  impl_->work.reset();
  impl_->thread.join();
}

std::shared_ptr<HttpClient::Exchange> HttpClient::Send(HttpRequest request, HttpResponseHandler* handler) {
  auto exchange = std::make_shared<ExchangeImpl>(impl_.get(), std::move(request), handler);
  asio::post(impl_->io, [exchange] { exchange->Begin(); });
  return exchange;
}

absl::StatusOr<std::pair<int, std::string>> HttpClient::Fetch(HttpRequest request) {
  class Collector : public HttpResponseHandler {
   public:
    void OnHead(int status) override { status_ = status; }
    bool OnBody(std::string_view bytes, Clock::time_point) override {
      body_.append(bytes);
      return true;
    }
    void OnEnd(Outcome outcome, const std::string& message, Clock::time_point) override {
      if (outcome == Outcome::kComplete) {
        done_.set_value(std::make_pair(status_, std::move(body_)));
      } else {
        done_.set_value(absl::UnavailableError(message));
      }
    }
    std::promise<absl::StatusOr<std::pair<int, std::string>>> done_;

   private:
    int status_ = 0;
    std::string body_;
  };
  Collector collector;
  auto result = collector.done_.get_future();
  std::shared_ptr<Exchange> exchange = Send(std::move(request), &collector);
  return result.get();
}

}  // namespace moeserve::bench
