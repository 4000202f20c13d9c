#include "tests/http/http_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace moeserve::testing {

RawHttpClient::RawHttpClient(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

RawHttpClient::~RawHttpClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawHttpClient::Send(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

int RawHttpClient::Receive(absl::Time deadline) {
  char chunk[16384];
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return -1;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(ms)) <= 0) continue;
    const ssize_t got = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return 0;
    buffer_.append(chunk, static_cast<size_t>(got));
    return static_cast<int>(got);
  }
}

bool RawHttpClient::Fill(size_t n, absl::Time deadline) {
  while (buffer_.size() < n) {
    if (Receive(deadline) <= 0) return false;
  }
  return true;
}

bool RawHttpClient::FillUntil(const std::string& delimiter, absl::Time deadline, size_t* at) {
  for (;;) {
    *at = buffer_.find(delimiter);
    if (*at != std::string::npos) return true;
    if (!Fill(buffer_.size() + 1, deadline)) return false;
  }
}

std::optional<RawResponse> RawHttpClient::Read(absl::Duration timeout, bool head_only) {
  const absl::Time deadline = absl::Now() + timeout;
  size_t end = 0;
  if (!FillUntil("\r\n\r\n", deadline, &end)) return std::nullopt;
  const std::string head = buffer_.substr(0, end);
  buffer_.erase(0, end + 4);
  RawResponse r;
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  std::vector<std::string> status = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (status.size() < 2 || !absl::SimpleAtoi(status[1], &r.status)) return std::nullopt;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    r.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  if (r.status == 100) return Read(deadline - absl::Now(), head_only);
  if (head_only) return r;
  if (r.headers.count("transfer-encoding") != 0) {
    for (;;) {
      size_t line_end = 0;
      if (!FillUntil("\r\n", deadline, &line_end)) return std::nullopt;
      size_t size = 0;
      if (!absl::SimpleHexAtoi(buffer_.substr(0, line_end), &size)) return std::nullopt;
      buffer_.erase(0, line_end + 2);
      if (!Fill(size + 2, deadline)) return std::nullopt;
      r.body += buffer_.substr(0, size);
      buffer_.erase(0, size + 2);
      if (size == 0) break;
    }
    return r;
  }
  size_t length = 0;
  if (r.headers.count("content-length") != 0) {
    if (!absl::SimpleAtoi(r.headers["content-length"], &length)) return std::nullopt;
  }
  if (!Fill(length, deadline)) return std::nullopt;
  r.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  return r;
}

bool RawHttpClient::WaitForClose(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const int got = Receive(deadline);
    if (got < 0) return false;
    if (got == 0) return true;
    buffer_.clear();
  }
}

std::string RawHttpClient::Request(const std::string& method, const std::string& path, const std::string& body,
                                   const std::string& extra_headers) {
  std::string out = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n", extra_headers);
  if (!body.empty() || method == "POST") {
    absl::StrAppend(&out, "Content-Type: application/json\r\nContent-Length: ", body.size(), "\r\n");
  }
  absl::StrAppend(&out, "\r\n", body);
  return out;
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::optional<RawResponse> HttpRequestOnce(int port, const std::string& method, const std::string& path,
                                           const std::string& body, const std::string& extra_headers) {
  RawHttpClient client(port);
  if (!client.connected()) return std::nullopt;
  if (!client.Send(RawHttpClient::Request(method, path, body, extra_headers))) return std::nullopt;
  return client.Read(absl::Seconds(10), method == "HEAD");
}

}  // namespace moeserve::testing
