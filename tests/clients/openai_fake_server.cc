#include "tests/clients/openai_fake_server.h"

#include <poll.h>
#include <sys/socket.h>

#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace moeserve::bench::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct FakeOpenAiServer::Impl {
  Impl(BehaviorFn behave, std::string api_key) : behave_(std::move(behave)), api_key_(std::move(api_key)) {}
  void Serve(tcp::socket* socket);

  BehaviorFn behave_;
  std::string api_key_;
  std::atomic<int> cancelled_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread accept_thread;
  std::atomic<bool> stopping{false};
  std::mutex mu;  // guards the members below
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<tcp::socket>> sockets;
  std::map<std::string, std::vector<Clock::time_point>> writes_log;
  std::map<std::string, json> bodies;
};

namespace {

std::string Chunked(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return size + data + "\r\n";
}

std::string Event(const json& payload) { return Chunked("data: " + payload.dump() + "\n\n"); }

std::string PlainResponse(int status, const std::string& reason, const json& body, bool close) {
  const std::string text = body.dump();
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(text.size()) +
         (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + text;
}

json ErrorBody(const std::string& message, int code) {
  return {{"error", {{"message", message}, {"type", "fake_error"}, {"param", nullptr}, {"code", code}}}};
}

int PromptTokens(const json& body) {
  if (body.contains("prompt") && body["prompt"].is_array()) return static_cast<int>(body["prompt"].size());
  if (body.contains("prompt") && body["prompt"].is_string()) {
    return static_cast<int>(body["prompt"].get<std::string>().size());
  }
  int n = 0;
  if (body.contains("messages")) {
    for (const json& m : body["messages"]) n += static_cast<int>(m.value("content", "").size());
  }
  return n;
}

// True when the peer closed (waits up to `ms`).
bool PeerClosed(tcp::socket& socket, int ms) {
  pollfd p{socket.native_handle(), POLLIN, 0};
  if (::poll(&p, 1, ms) <= 0) return false;
  char c;
  return ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

}  // namespace

FakeOpenAiServer::FakeOpenAiServer(BehaviorFn behave, std::string api_key)
    : impl_(std::make_unique<Impl>(std::move(behave), std::move(api_key))) {
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen(4096);
  port_ = impl_->acceptor.local_endpoint().port();
  impl_->accept_thread = std::thread([this] {
    while (!impl_->stopping.load()) {
      auto socket = std::make_shared<tcp::socket>(impl_->io);
      beast::error_code ec;
      impl_->acceptor.accept(*socket, ec);
      if (ec) {
        if (impl_->stopping.load()) return;
        continue;
      }
      impl_->connections_.fetch_add(1);
      std::lock_guard<std::mutex> lock(impl_->mu);
      impl_->sockets.push_back(socket);
      impl_->threads.emplace_back([impl = impl_.get(), socket] {
        impl->Serve(socket.get());
        std::lock_guard<std::mutex> lock(impl->mu);  // the destructor shuts sockets down under mu
        beast::error_code ignored;
        socket->close(ignored);
      });
    }
  });
}

FakeOpenAiServer::~FakeOpenAiServer() {
  impl_->stopping = true;
  beast::error_code ignored;
  // A blocking accept() is not woken by close(): shut the listening socket down first.
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  impl_->acceptor.close(ignored);
  impl_->accept_thread.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (auto& socket : impl_->sockets) {
      if (socket->is_open()) ::shutdown(socket->native_handle(), SHUT_RDWR);  // wakes blocked reads
    }
    threads = std::move(impl_->threads);
  }
  for (std::thread& t : threads) t.join();
}

int FakeOpenAiServer::cancelled() const { return impl_->cancelled_.load(); }
int FakeOpenAiServer::connections() const { return impl_->connections_.load(); }
int FakeOpenAiServer::requests() const { return impl_->requests_.load(); }

std::vector<Clock::time_point> FakeOpenAiServer::WriteTimes(const std::string& request_id) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->writes_log.find(request_id);
  return it == impl_->writes_log.end() ? std::vector<Clock::time_point>() : it->second;
}

json FakeOpenAiServer::Body(const std::string& request_id) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->bodies.find(request_id);
  return it == impl_->bodies.end() ? json() : it->second;
}

void FakeOpenAiServer::Impl::Serve(tcp::socket* socket_ptr) {
  tcp::socket& socket = *socket_ptr;
  beast::flat_buffer buffer;
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  auto send = [&](const std::string& bytes) {
    asio::write(socket, asio::buffer(bytes), ec);
    return !ec;
  };
  while (!stopping.load()) {
    http::request<http::string_body> request;
    http::read(socket, buffer, request, ec);
    if (ec) return;
    const std::string target(request.target());
    if (request.method() == http::verb::get && target == "/v1/models") {
      json models = {{"object", "list"}, {"data", json::array({{{"id", "fake"}, {"object", "model"}}})}};
      if (!send(PlainResponse(200, "OK", models, false))) return;
      continue;
    }
    if (!api_key_.empty() && request[http::field::authorization] != "Bearer " + api_key_) {
      if (!send(PlainResponse(401, "Unauthorized", ErrorBody("bad or missing API key", 401), false))) {
        return;
      }
      continue;
    }
    const bool chat = target == "/v1/chat/completions";
    if (request.method() != http::verb::post || (!chat && target != "/v1/completions")) {
      if (!send(PlainResponse(404, "Not Found", ErrorBody("no route " + target, 404), false))) return;
      continue;
    }
    const Clock::time_point start = Clock::now();
    requests_.fetch_add(1);
    const json body = json::parse(request.body(), nullptr, /*allow_exceptions=*/false);
    const std::string id(request["X-Request-Id"]);
    {
      std::lock_guard<std::mutex> lock(mu);
      bodies[id] = body;
    }
    const FakeHttpBehavior b = behave_(body);
    if (b.http_status != 200) {
      const std::string reason = b.http_status == 429 ? "Too Many Requests" : "Error";
      if (!send(PlainResponse(b.http_status, reason, ErrorBody("injected failure", b.http_status), b.close_after)) ||
          b.close_after) {
        return;
      }
      continue;
    }
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n";
    if (b.close_after) head += "Connection: close\r\n";
    if (!send(head + "\r\n")) return;
    auto gone = [&] {
      cancelled_.fetch_add(1);
      beast::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
    };
    if (b.hang) {
      while (!stopping.load() && !PeerClosed(socket, 10)) {
      }
      return gone();
    }
    if (chat && !send(Event({{"choices", json::array({{{"index", 0},
                                                       {"delta", {{"role", "assistant"}, {"content", ""}}},
                                                       {"finish_reason", nullptr}}})}}))) {
      return gone();
    }
    const int max_tokens = body.value("max_tokens", 16);
    const int tokens = b.tokens >= 0 ? b.tokens : max_tokens;
    std::vector<Clock::time_point> writes;
    auto save = [&] {
      std::lock_guard<std::mutex> lock(mu);
      writes_log[id] = writes;
    };
    int sent = 0;
    for (int chunk = 0; sent < tokens; ++chunk) {
      if (chunk == b.fail_after_chunks) {
        send(Event(ErrorBody("injected failure", 500)) + Chunked(""));
        save();
        return;
      }
      std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(b.ttft_s + chunk * b.itl_s)));
      std::string text;
      for (int i = 0; i < b.tokens_per_chunk && sent < tokens; ++i, ++sent) text += " tok";
      const json finish = sent >= tokens ? json("length") : json(nullptr);
      json choice = {{"index", 0}, {"finish_reason", finish}};
      if (chat) {
        choice["delta"] = {{"content", text}};
      } else {
        choice["text"] = text;
      }
      writes.push_back(Clock::now());
      if (!send(Event({{"id", "cmpl-fake"}, {"choices", json::array({choice})}}))) {
        save();
        return gone();
      }
    }
    save();
    const int prompt = PromptTokens(body);
    json usage = {{"prompt_tokens", prompt},
                  {"completion_tokens", sent},
                  {"total_tokens", prompt + sent},
                  {"prompt_tokens_details", {{"cached_tokens", prompt / 2}}}};
    if (!send(Event({{"id", "cmpl-fake"}, {"choices", json::array()}, {"usage", usage}}) + Chunked("data: [DONE]\n\n") +
              Chunked(""))) {
      return gone();
    }
    if (b.close_after || b.drop_after) return;
  }
}

}  // namespace moeserve::bench::testing
