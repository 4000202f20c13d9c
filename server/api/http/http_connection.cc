#include "server/api/http/http_connection.h"

#include <algorithm>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl/stream.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/error.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/string_body.hpp"
#include "server/api/http/http_request_reader.h"
#include "server/api/http/http_wire.h"
#include "server/common/logging.h"

namespace moeserve::api::http_internal {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

HttpResponse ServerState::Error(int status, const std::string& message) const {
  if (options.error_response) return options.error_response(status, message);
  return {.status = status, .content_type = "text/plain; charset=utf-8", .body = message + "\n"};
}

namespace {

// Bytes of a pipelined next request read while a response is in progress.
constexpr size_t kReadChunk = 4096;
// How long a closing connection keeps reading (and dropping) what the client still sends, so that
// the kernel does not answer it with a reset that could destroy our last response.
constexpr auto kLingerTime = std::chrono::seconds(1);

std::chrono::nanoseconds ToChrono(absl::Duration d) { return absl::ToChronoNanoseconds(d); }

class Exchange;

// The connection as an Exchange sees it. Every method runs on the connection's strand.
class ExchangeSink {
 public:
  virtual ~ExchangeSink() = default;
  virtual void OnRespond(Exchange* x, HttpResponse response) = 0;
  virtual void OnStartStream(Exchange* x, int status, std::string content_type,
                             std::vector<std::pair<std::string, std::string>> headers) = 0;
  virtual void OnWrite(Exchange* x, std::string data) = 0;
  virtual void OnEnd(Exchange* x) = 0;
};

class Exchange final : public HttpExchange, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(net::any_io_executor strand, std::weak_ptr<ExchangeSink> sink)
      : strand_(std::move(strand)), sink_(std::move(sink)) {}

  void Respond(HttpResponse response) override {
    Run([r = std::move(response)](ExchangeSink* s, Exchange* x) mutable { s->OnRespond(x, std::move(r)); });
  }
  void StartStream(int status, std::string content_type,
                   std::vector<std::pair<std::string, std::string>> headers) override {
    Run([status, c = std::move(content_type), h = std::move(headers)](ExchangeSink* s, Exchange* x) mutable {
      s->OnStartStream(x, status, std::move(c), std::move(h));
    });
  }
  void Write(std::string data) override {
    Run([d = std::move(data)](ExchangeSink* s, Exchange* x) mutable { s->OnWrite(x, std::move(d)); });
  }
  void End() override {
    Run([](ExchangeSink* s, Exchange* x) { s->OnEnd(x); });
  }
  void SetCallbacks(std::function<void()> on_wake, std::function<void()> on_idle,
                    std::function<void()> on_cancel) override {
    net::dispatch(strand_, [self = shared_from_this(), w = std::move(on_wake), i = std::move(on_idle),
                            c = std::move(on_cancel)]() mutable {
      if (self->cancelled_.load() || self->sink_.expired()) {
        self->cancelled_.store(true);
        self->done_ = true;
        if (c) c();
        return;
      }
      if (self->done_) return;
      self->on_wake_ = std::move(w);
      self->on_idle_ = std::move(i);
      self->on_cancel_ = std::move(c);
      if (self->on_wake_) self->on_wake_();  // wakes before now found no callback
    });
  }
  void Wake() override {
    if (wake_pending_.exchange(true)) return;
    net::post(strand_, [self = shared_from_this()] {
      self->wake_pending_.store(false);
      if (!self->done_ && self->on_wake_) self->on_wake_();
    });
  }
  bool cancelled() const override { return cancelled_.load(); }

  // Strand only.
  void RunIdle() {
    if (!done_ && on_idle_) on_idle_();
  }
  void Cancel() {
    if (done_) return;
    cancelled_.store(true);
    std::function<void()> cancel = std::move(on_cancel_);
    Finish();
    if (cancel) cancel();
  }
  // The response is complete: the callbacks (which may hold this exchange) are dropped.
  void Finish() {
    done_ = true;
    on_wake_ = nullptr;
    on_idle_ = nullptr;
    on_cancel_ = nullptr;
  }

 private:
  template <class F>
  void Run(F f) {
    net::dispatch(strand_, [self = shared_from_this(), f = std::move(f)]() mutable {
      if (self->done_) return;
      if (std::shared_ptr<ExchangeSink> sink = self->sink_.lock()) f(sink.get(), self.get());
    });
  }

  const net::any_io_executor strand_;
  const std::weak_ptr<ExchangeSink> sink_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> wake_pending_{false};
  bool done_ = false;                                    // strand only
  std::function<void()> on_wake_, on_idle_, on_cancel_;  // strand only
};

template <class Stream>
constexpr bool kIsTls = !std::is_same_v<Stream, tcp::socket>;

// One HTTP/1.1 connection: a state machine on its strand (the executor of its socket).
template <class Stream>
class Connection final : public ConnectionControl,
                         public ExchangeSink,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  template <class... Args>
  Connection(HttpHandler* handler, std::shared_ptr<ServerState> state, Args&&... stream_args)
      : stream_(std::forward<Args>(stream_args)...),
        deadline_(stream_.get_executor()),
        write_timer_(stream_.get_executor()),
        idle_tick_(stream_.get_executor()),
        buffer_(static_cast<size_t>(state->options.max_header_bytes) + 16 * kReadChunk),
        handler_(handler),
        state_(std::move(state)),
        options_(state_->options) {}

  ~Connection() override {
    absl::MutexLock lock(&state_->mu);
    state_->connections.erase(this);
  }

  void Start() {
    {
      absl::MutexLock lock(&state_->mu);
      state_->connections.emplace(this, this->shared_from_this());
    }
    error_code ec;
    stream_.lowest_layer().set_option(tcp::no_delay(true), ec);
    if constexpr (kIsTls<Stream>) {
      Deadline(options_.header_timeout, Wait::kHandshake);
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](error_code ec) {
        if (self->closed_) return;
        if (ec) return self->Close();
        self->ReadRequest();
      });
    } else {
      ReadRequest();
    }
  }

  // ConnectionControl.
  // A kept-alive connection waiting for its next request closes now; a fresh one is about to send
  // its first request, which is still answered (with Connection: close).
  void Drain() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      self->drain_ = true;
      if (!self->responding_ && !self->in_request_ && !self->first_request_) self->Close();
    });
  }
  void Cancel() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->Close(); });
  }
  void Close() {
    if (closed_) return;
    closed_ = true;
    deadline_.cancel();
    write_timer_.cancel();
    idle_tick_.cancel();
    CancelExchange();
    error_code ec;
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ec);
    stream_.lowest_layer().close(ec);
  }

  // ExchangeSink.
  void OnRespond(Exchange* x, HttpResponse response) override {
    if (x != exchange_.get() || streaming_ || response_done_) return;
    keep_alive_ = keep_alive_ && !Draining();
    Queue(SerializeResponse(response, keep_alive_, head_only_), /*bounded=*/false);
    response_done_ = true;
    x->Finish();
    MaybeWrite();
  }
  void OnStartStream(Exchange* x, int status, std::string content_type,
                     std::vector<std::pair<std::string, std::string>> headers) override {
    if (x != exchange_.get() || streaming_ || response_done_) return;
    streaming_ = true;
    keep_alive_ = keep_alive_ && !Draining();
    Queue(SerializeStreamHead(status, content_type, headers, keep_alive_), /*bounded=*/false);
    ArmIdleTick();
    MaybeWrite();
  }
  void OnWrite(Exchange* x, std::string data) override {
    if (x != exchange_.get() || !streaming_ || response_done_ || head_only_) return;
    if (!Queue(Chunk(data), /*bounded=*/true)) return;
    MaybeWrite();
  }
  void OnEnd(Exchange* x) override {
    if (x != exchange_.get() || !streaming_ || response_done_) return;
    if (!head_only_) Queue(std::string(kLastChunk), /*bounded=*/false);
    response_done_ = true;
    idle_tick_.cancel();
    x->Finish();
    MaybeWrite();
    if (!write_in_flight_ && pending_.empty()) OnResponseWritten();
  }

 private:
  enum class Wait { kHandshake, kFirstByte, kHeader, kBody, kIdle };

  bool Draining() const { return drain_ || state_->draining.load(); }

  // ---- Deadlines.
  void Deadline(absl::Duration d, Wait kind) {
    wait_ = kind;
    const uint64_t generation = ++deadline_generation_;
    deadline_.expires_after(ToChrono(d));
    deadline_.async_wait([self = this->shared_from_this(), generation](error_code ec) {
      if (ec || generation != self->deadline_generation_ || self->closed_) return;
      self->timed_out_ = true;
      error_code ignored;
      self->stream_.lowest_layer().cancel(ignored);
    });
  }
  void NoDeadline() {
    ++deadline_generation_;
    deadline_.cancel();
  }

  // ---- Reading requests.
  void ReadRequest() {
    if (closed_) return;
    if (buffer_.size() > 0) return ReadHeader();
    // Nothing of the next request yet: wait for its first byte (a fresh connection has the header
    // timeout, a kept-alive one the idle timeout).
    Deadline(first_request_ ? options_.header_timeout : options_.idle_timeout,
             first_request_ ? Wait::kFirstByte : Wait::kIdle);
    ReadSome();
  }

  // A read of whatever comes: the first bytes of the next request, or, while a response is in
  // progress, the watch that notices a client that went away.
  void ReadSome() {
    const size_t room = std::min(kReadChunk, buffer_.max_size() - buffer_.size());
    if (room == 0) return;
    reading_some_ = true;
    stream_.async_read_some(buffer_.prepare(room),
                            [self = this->shared_from_this()](error_code ec, size_t n) { self->OnReadSome(ec, n); });
  }

  void OnReadSome(error_code ec, size_t n) {
    reading_some_ = false;
    if (closed_) return;
    if (lingering_) {
      if (ec) return Close();
      return DiscardReads();
    }
    if (ec) {
      if (responding_) MS_LOG(DEBUG) << "http: client went away during a response: " << ec.message();
      return Close();
    }
    buffer_.commit(n);
    if (responding_) return;  // a pipelined request: parsed after this response
    ReadHeader();
  }

  void ReadHeader() {
    if (closed_) return;
    in_request_ = true;
    parser_.emplace();
    ApplyLimits(options_, &*parser_);
    Deadline(options_.header_timeout, Wait::kHeader);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    if (closed_) return;
    if (ec) return OnReadError(ec);
    if (parser_->is_done()) return Dispatch();
    const auto& header = parser_->get();
    const auto expect = header.find(http::field::expect);
    if (expect != header.end() &&
        absl::EqualsIgnoreCase(absl::string_view(expect->value().data(), expect->value().size()), "100-continue")) {
      Queue("HTTP/1.1 100 Continue\r\n\r\n", /*bounded=*/false);
      MaybeWrite();
    }
    Deadline(options_.header_timeout, Wait::kBody);
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (self->closed_) return;
      if (ec) return self->OnReadError(ec);
      self->Dispatch();
    });
  }

  void OnReadError(error_code ec) {
    in_request_ = false;
    std::optional<std::pair<int, std::string>> error = ReadErrorResponse(ec, options_);
    if (error.has_value() && error->first != 400) return ErrorAndClose(error->first, error->second);
    if (timed_out_) {
      if (wait_ == Wait::kHeader || wait_ == Wait::kBody) {
        return ErrorAndClose(
            408, absl::StrCat("the request ", wait_ == Wait::kHeader ? "header" : "body", " did not arrive within ",
                              absl::FormatDuration(options_.header_timeout)));
      }
      return Close();
    }
    if (error.has_value()) return ErrorAndClose(error->first, error->second);  // malformed
    Close();  // the client closed or reset the connection
  }

  void Dispatch() {
    NoDeadline();
    in_request_ = false;
    http::request<http::string_body> message = parser_->release();
    parser_.reset();
    keep_alive_ = message.keep_alive();
    head_only_ = message.method() == http::verb::head;
    HttpRequest request = ToHttpRequest(std::move(message));
    first_request_ = false;
    responding_ = true;
    {
      absl::MutexLock lock(&state_->mu);
      ++state_->in_flight;
    }
    exchange_ =
        std::make_shared<Exchange>(stream_.get_executor(), std::weak_ptr<ExchangeSink>(this->shared_from_this()));
    // Notices a client that goes away (not needed when it already sent its next request).
    if (!reading_some_ && buffer_.size() == 0) ReadSome();
    handler_->Handle(std::move(request), exchange_);
  }

  // ---- Writing.
  // Appends to the output; false (and the connection closed) when a bounded write overflows.
  bool Queue(std::string bytes, bool bounded) {
    pending_ += bytes;
    last_write_ = absl::Now();
    if (bounded && static_cast<int64_t>(pending_.size()) > options_.max_write_buffer_bytes) {
      MS_LOG(DEBUG) << "http: the client does not read; more than " << options_.max_write_buffer_bytes
                    << " bytes queued: closing";
      Close();
      return false;
    }
    return true;
  }

  void MaybeWrite() {
    if (closed_ || write_in_flight_ || pending_.empty()) return;
    writing_.swap(pending_);
    pending_.clear();
    write_in_flight_ = true;
    const uint64_t generation = ++write_generation_;
    write_timer_.expires_after(ToChrono(options_.idle_timeout));
    write_timer_.async_wait([self = this->shared_from_this(), generation](error_code ec) {
      if (ec || generation != self->write_generation_ || self->closed_) return;
      MS_LOG(DEBUG) << "http: a write made no progress for the idle timeout: closing";
      self->Close();
    });
    net::async_write(stream_, net::buffer(writing_),
                     [self = this->shared_from_this()](error_code ec, size_t) { self->OnWritten(ec); });
  }

  void OnWritten(error_code ec) {
    write_in_flight_ = false;
    ++write_generation_;
    write_timer_.cancel();
    writing_.clear();
    if (closed_) return;
    if (ec) return Close();
    MaybeWrite();
    if (!write_in_flight_ && pending_.empty()) {
      if (closing_after_write_) return Linger();
      if (response_done_) OnResponseWritten();
    }
  }

  void OnResponseWritten() {
    response_done_ = false;
    streaming_ = false;
    responding_ = false;
    EndInFlight();
    exchange_.reset();
    if (!keep_alive_ || Draining()) return Linger();
    if (reading_some_) {
      // The watch read is still pending: it now waits for the next request.
      Deadline(options_.idle_timeout, Wait::kIdle);
      return;
    }
    ReadRequest();
  }

  void EndInFlight() {
    absl::MutexLock lock(&state_->mu);
    --state_->in_flight;
  }

  void CancelExchange() {
    if (exchange_ == nullptr) return;
    std::shared_ptr<Exchange> x = std::move(exchange_);
    exchange_.reset();
    if (responding_) {
      responding_ = false;
      EndInFlight();
    }
    x->Cancel();
  }

  // Sends the server's own error response and closes the connection once it is written.
  void ErrorAndClose(int status, const std::string& message) {
    MS_LOG(DEBUG) << "http: " << status << ": " << message;
    keep_alive_ = false;
    Queue(SerializeResponse(state_->Error(status, message), /*keep_alive=*/false, false),
          /*bounded=*/false);
    closing_after_write_ = true;
    MaybeWrite();
  }

  // Half-closes and drops what the client still sends for a moment, then closes.
  void Linger() {
    if (closed_ || lingering_) return;
    lingering_ = true;
    error_code ec;
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    ++deadline_generation_;
    deadline_.expires_after(kLingerTime);
    deadline_.async_wait([self = this->shared_from_this()](error_code ec) {
      if (!ec) self->Close();
    });
    if (!reading_some_) DiscardReads();
  }
  void DiscardReads() {
    buffer_.consume(buffer_.size());
    ReadSome();
  }

  // ---- Streams that go quiet.
  void ArmIdleTick() {
    idle_tick_.expires_at(std::chrono::steady_clock::now() +
                          ToChrono(options_.stream_idle_interval - (absl::Now() - last_write_)));
    idle_tick_.async_wait([self = this->shared_from_this()](error_code ec) {
      if (ec || self->closed_ || !self->streaming_ || self->response_done_) return;
      if (absl::Now() - self->last_write_ >= self->options_.stream_idle_interval && self->exchange_ != nullptr) {
        self->exchange_->RunIdle();
        if (self->closed_) return;
        self->last_write_ = absl::Now();  // even when the handler wrote nothing
      }
      self->ArmIdleTick();
    });
  }

  Stream stream_;
  net::steady_timer deadline_;
  net::steady_timer write_timer_;
  net::steady_timer idle_tick_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpHandler* const handler_;
  const std::shared_ptr<ServerState> state_;
  const HttpServerOptions& options_;

  Wait wait_ = Wait::kFirstByte;
  uint64_t deadline_generation_ = 0;
  uint64_t write_generation_ = 0;
  bool timed_out_ = false;
  bool first_request_ = true;
  bool in_request_ = false;     // a request's header or body is being read
  bool reading_some_ = false;   // a ReadSome is pending
  bool responding_ = false;     // a request was dispatched and its response is not written
  bool streaming_ = false;      // the head of a chunked response was queued
  bool response_done_ = false;  // the response's last bytes were queued
  bool keep_alive_ = false;
  bool head_only_ = false;
  bool drain_ = false;
  bool closing_after_write_ = false;
  bool lingering_ = false;
  bool closed_ = false;
  std::shared_ptr<Exchange> exchange_;
  std::string pending_;  // queued, not yet handed to the socket
  std::string writing_;  // handed to the socket
  bool write_in_flight_ = false;
  absl::Time last_write_ = absl::Now();
};

}  // namespace

void StartConnection(tcp::socket socket, net::ssl::context* tls, HttpHandler* handler,
                     std::shared_ptr<ServerState> state) {
  if (tls != nullptr) {
    std::make_shared<Connection<net::ssl::stream<tcp::socket>>>(handler, std::move(state), std::move(socket), *tls)
        ->Start();
  } else {
    std::make_shared<Connection<tcp::socket>>(handler, std::move(state), std::move(socket))->Start();
  }
}

}  // namespace moeserve::api::http_internal
