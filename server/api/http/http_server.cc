#include "server/api/http/http_server.h"

#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl/context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "server/api/http/http_connection.h"
#include "server/common/logging.h"

namespace moeserve::api {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using http_internal::ServerState;

namespace {

// After accept fails for want of file descriptors, wait this long before accepting again.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

absl::StatusOr<std::unique_ptr<net::ssl::context>> MakeTlsContext(const HttpServerOptions& o) {
  auto context = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
  error_code ec;
  context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                           net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1,
                       ec);
  if (context->use_certificate_chain_file(o.tls_cert_file, ec); ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert ", o.tls_cert_file, ": not a PEM certificate chain (", ec.message(), ")"));
  }
  if (context->use_private_key_file(o.tls_key_file, net::ssl::context::pem, ec); ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key ", o.tls_key_file, ": not a PEM private key, or it does not match the certificate --tls-cert ",
        o.tls_cert_file, " (", ec.message(), ")"));
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key ", o.tls_key_file, " does not match the certificate --tls-cert ", o.tls_cert_file));
  }
  if (!o.tls_client_ca_file.empty()) {
    if (context->load_verify_file(o.tls_client_ca_file, ec); ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-client-ca ", o.tls_client_ca_file, ": not a PEM certificate (", ec.message(), ")"));
    }
    context->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

}  // namespace

struct HttpServer::Impl {
  explicit Impl(HttpServerOptions options)
      : state(std::make_shared<ServerState>(std::move(options))), work(net::make_work_guard(io)) {}

  // A listening socket. Everything that touches the acceptor and its timer runs on their strand:
  // the accept handlers and Stop's close would otherwise race on two I/O threads.
  struct Listener {
    Listener(net::io_context& io, HttpHandler* handler, bool tls)
        : acceptor(net::make_strand(io)), backoff(acceptor.get_executor()), handler(handler), tls(tls) {}
    tcp::acceptor acceptor;
    net::steady_timer backoff;
    HttpHandler* handler;
    bool tls;
  };

  void Accept(Listener* listener) {
    listener->acceptor.async_accept(net::make_strand(io), [this, listener](error_code ec, tcp::socket socket) {
      if (!listener->acceptor.is_open()) return;
      if (ec) {
        if (ec == net::error::operation_aborted) return;
        MS_LOG(WARNING) << "http: accept: " << ec.message();
        listener->backoff.expires_after(kAcceptBackoff);
        listener->backoff.async_wait([this, listener](error_code ec) {
          if (!ec) Accept(listener);
        });
        return;
      }
      http_internal::StartConnection(std::move(socket), listener->tls ? tls_context.get() : nullptr, listener->handler,
                                     state);
      Accept(listener);
    });
  }

  // Runs `fn` on every live connection (through its strand).
  template <class F>
  void ForEachConnection(F fn) {
    std::vector<std::shared_ptr<http_internal::ConnectionControl>> live;
    {
      absl::MutexLock lock(&state->mu);
      for (const auto& [raw, weak] : state->connections) {
        if (auto c = weak.lock()) live.push_back(std::move(c));
      }
    }
    for (const auto& c : live) fn(*c);
  }

  net::io_context io;
  std::shared_ptr<ServerState> state;
  std::unique_ptr<net::ssl::context> tls_context;
  net::executor_work_guard<net::io_context::executor_type> work;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::vector<std::thread> threads;
  bool stopped = false;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(HttpServerOptions options) {
  if (options.io_threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat("HTTP I/O threads must be at least 1, got ", options.io_threads));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  auto impl = std::make_unique<Impl>(options);
  if (!options.tls_cert_file.empty()) {
    absl::StatusOr<std::unique_ptr<net::ssl::context>> tls = MakeTlsContext(options);
    if (!tls.ok()) return tls.status();
    impl->tls_context = std::move(*tls);
  }
  for (int i = 0; i < options.io_threads; ++i) {
    impl->threads.emplace_back([io = &impl->io] { io->run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

absl::Status HttpServer::CheckTlsFiles(const HttpServerOptions& options) { return MakeTlsContext(options).status(); }

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<int> HttpServer::Listen(const std::string& host, int port, HttpHandler* handler, bool tls) {
  if (tls && impl_->tls_context == nullptr) {
    return absl::InvalidArgumentError("a TLS listener needs --tls-cert and --tls-key");
  }
  error_code ec;
  tcp::resolver resolver(impl_->io);
  const auto endpoints =
      resolver.resolve(host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP address ", host, ":", port, ": ", ec ? ec.message() : "no address"));
  }
  auto listener = std::make_unique<Impl::Listener>(impl_->io, handler, tls);
  std::string last_error = "no address";
  for (const auto& entry : endpoints) {
    tcp::acceptor& a = listener->acceptor;
    error_code e;
    a.open(entry.endpoint().protocol(), e);
    if (!e) a.set_option(net::socket_base::reuse_address(true), e);
    if (!e) a.bind(entry.endpoint(), e);
    if (!e) a.listen(net::socket_base::max_listen_connections, e);
    if (!e) break;
    last_error = e.message();
    error_code ignored;
    a.close(ignored);
  }
  if (!listener->acceptor.is_open()) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port, " for HTTP: ", last_error));
  }
  const int bound = listener->acceptor.local_endpoint().port();
  Impl::Listener* raw = listener.get();
  impl_->listeners.push_back(std::move(listener));
  net::post(raw->acceptor.get_executor(), [this, raw] { impl_->Accept(raw); });
  return bound;
}

int HttpServer::in_flight() const {
  absl::MutexLock lock(&impl_->state->mu);
  return impl_->state->in_flight;
}

int HttpServer::connections() const {
  absl::MutexLock lock(&impl_->state->mu);
  return static_cast<int>(impl_->state->connections.size());
}

void HttpServer::StartDraining() {
  impl_->state->draining.store(true);
  impl_->ForEachConnection([](http_internal::ConnectionControl& c) { c.Drain(); });
}

bool HttpServer::WaitForNoneInFlight(absl::Time deadline) const {
  ServerState& state = *impl_->state;
  absl::MutexLock lock(&state.mu);
  auto none = [&state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) { return state.in_flight == 0; };
  return state.mu.AwaitWithDeadline(absl::Condition(&none), deadline);
}

void HttpServer::CancelInFlight() {
  impl_->ForEachConnection([](http_internal::ConnectionControl& c) { c.Cancel(); });
}

void HttpServer::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  // The listeners close on their strands (Asio objects are not thread-safe); the port is free once
  // this returns.
  for (auto& l : impl_->listeners) {
    std::promise<void> closed;
    net::post(l->acceptor.get_executor(), [listener = l.get(), &closed] {
      error_code ignored;
      listener->acceptor.close(ignored);
      listener->backoff.cancel();
      closed.set_value();
    });
    closed.get_future().wait();
  }
  impl_->ForEachConnection([](http_internal::ConnectionControl& c) { c.Cancel(); });
  // Connections end once their handlers have run; then nothing is left for the threads.
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (connections() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  impl_->work.reset();
  impl_->io.stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace moeserve::api
