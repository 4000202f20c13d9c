#include "server/dist/lifeline.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

constexpr int kMaxAddresses = 16;
constexpr int kHostBytes = 64;
constexpr char kGoodbye = 'B';

// What rank 0 broadcasts: its port (0: no lifelines), pid, host name and IPv4 addresses.
struct Rendezvous {
  uint32_t port = 0;
  int32_t pid = 0;
  char host[kHostBytes] = {};
  uint32_t count = 0;
  uint32_t addresses[kMaxAddresses] = {};  // network byte order
};

// What each other rank sends first on its connection.
struct Greeting {
  int32_t rank = -1;
  int32_t pid = 0;
  char host[kHostBytes] = {};
};

void ThisHost(char (&host)[kHostBytes]) {
  if (gethostname(host, kHostBytes - 1) != 0) std::strncpy(host, "?", kHostBytes);
  host[kHostBytes - 1] = '\0';
}

std::string Who(int rank, int32_t pid, const char* host) {
  return absl::StrCat("rank ", rank, " (pid ", pid, " on ", std::string(host, strnlen(host, kHostBytes)), ")");
}

// This host's IPv4 addresses, loopback last.
void LocalAddresses(Rendezvous* r) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return;
  std::vector<uint32_t> outer, loop;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || !(a->ifa_flags & IFF_UP)) continue;
    const uint32_t ip = reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr;
    (a->ifa_flags & IFF_LOOPBACK ? loop : outer).push_back(ip);
  }
  freeifaddrs(list);
  outer.insert(outer.end(), loop.begin(), loop.end());
  for (uint32_t ip : outer) {
    if (r->count == kMaxAddresses) break;
    r->addresses[r->count++] = ip;
  }
}

// Waits for `events` on fd until `deadline`; false on timeout or error.
bool PollUntil(int fd, short events, absl::Time deadline) {
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms < 0) return false;
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(ms));
    if (n > 0) return (p.revents & events) != 0;
    if (n < 0 && errno != EINTR) return false;
  }
}

bool ReadFull(int fd, void* data, size_t size, absl::Time deadline) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    if (!PollUntil(fd, POLLIN, deadline)) return false;
    const ssize_t n = recv(fd, p, size, 0);
    if (n <= 0 && !(n < 0 && errno == EINTR)) return false;
    if (n > 0) p += n, size -= static_cast<size_t>(n);
  }
  return true;
}

bool WriteFull(int fd, const void* data, size_t size) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n, size -= static_cast<size_t>(n);
  }
  return true;
}

// A connection to ip:port within `timeout`, or -1.
int ConnectTo(uint32_t ip, uint16_t port, absl::Duration timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = ip;
  int err = 0;
  socklen_t len = sizeof(err);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
      (errno != EINPROGRESS || !PollUntil(fd, POLLOUT, absl::Now() + timeout) ||
       getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Lifelines>> Lifelines::Connect(int rank, int world_size, const BroadcastFn& broadcast,
                                                              absl::Duration connect_timeout) {
  std::unique_ptr<Lifelines> self(new Lifelines(rank, world_size));
  const std::string me = absl::StrCat("rank ", rank, " of ", world_size);
  Rendezvous r;
  int listener = -1;
  if (rank == 0) {
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t len = sizeof(addr);
    if (listener >= 0 && bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        listen(listener, world_size) == 0 && getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      r.port = ntohs(addr.sin_port);
      r.pid = static_cast<int32_t>(getpid());
      ThisHost(r.host);
      LocalAddresses(&r);
    } else {
      MS_LOG(WARNING) << me << ": no lifelines (cannot listen: " << std::strerror(errno)
                      << "); a lost rank is found by the collective timeout only";
    }
  }
  RETURN_IF_ERROR(broadcast(absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&r), sizeof(r))));

  const absl::Time deadline = absl::Now() + connect_timeout;
  if (rank != 0 && r.port != 0) {
    int fd = -1;
    for (uint32_t i = 0; i < r.count && i < kMaxAddresses && fd < 0; ++i) {
      fd = ConnectTo(r.addresses[i], static_cast<uint16_t>(r.port), connect_timeout / 4);
    }
    Greeting g;
    g.rank = rank;
    g.pid = static_cast<int32_t>(getpid());
    ThisHost(g.host);
    if (fd >= 0 && WriteFull(fd, &g, sizeof(g))) {
      self->peers_.push_back({fd, 0, Who(0, r.pid, r.host)});
    } else if (fd >= 0) {
      close(fd);
    }
  } else if (rank == 0 && r.port != 0) {
    while (static_cast<int>(self->peers_.size()) < world_size - 1 && PollUntil(listener, POLLIN, deadline)) {
      const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      Greeting g;
      if (!ReadFull(fd, &g, sizeof(g), deadline) || g.rank <= 0 || g.rank >= world_size) {
        close(fd);
        continue;
      }
      self->peers_.push_back({fd, g.rank, Who(g.rank, g.pid, g.host)});
    }
  }
  if (listener >= 0) close(listener);

  // Agree on which connections stand (a rank that connected after rank 0 stopped waiting drops
  // its own, so that rank 0 closing the listener is not taken for a loss).
  std::vector<uint8_t> linked(static_cast<size_t>(world_size), 0);
  for (const Peer& p : self->peers_) linked[static_cast<size_t>(p.rank)] = 1;
  RETURN_IF_ERROR(broadcast(absl::MakeSpan(linked)));
  if (rank != 0 && !linked[static_cast<size_t>(rank)]) {
    for (Peer& p : self->peers_) close(p.fd);
    self->peers_.clear();
  }
  std::vector<int> missing;
  for (int p = 1; p < world_size; ++p) {
    if (!linked[static_cast<size_t>(p)] && (rank == 0 || rank == p)) missing.push_back(p);
  }
  if (!missing.empty() && r.port != 0) {
    MS_LOG(WARNING) << me << ": no lifeline between rank 0 and rank" << (missing.size() > 1 ? "s " : " ")
                    << absl::StrJoin(missing, ", ") << " (no address of rank 0 answered within "
                    << absl::FormatDuration(connect_timeout)
                    << "); a lost rank is found by the collective timeout only";
  }

  if (pipe2(self->wake_, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat(me, ": pipe: ", strerror(errno)));
  self->watcher_ = std::thread([s = self.get()] { s->Watch(); });
  return self;
}

void Lifelines::Watch() {
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    for (const Peer& p : peers_) {
      if (p.fd >= 0) fds.push_back({p.fd, POLLIN, 0});
    }
    if (fds.size() == 1) return;  // nothing left to watch
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents != 0) return;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Peer* peer = nullptr;
      for (Peer& p : peers_) {
        if (p.fd == fds[i].fd) peer = &p;
      }
      char c = 0;
      const ssize_t n = recv(peer->fd, &c, 1, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n == 1 && c != kGoodbye) continue;
      close(peer->fd);
      peer->fd = -1;
      if (n == 1) continue;  // a clean exit
      const std::string what = absl::StrCat("lost ", peer->who, ": its process ended (its lifeline to rank ", rank_,
                                            " closed without a goodbye)");
      {
        absl::MutexLock lock(&mu_);
        if (!lost_) lost_ = what;
      }
      if (!quiet_.load()) MS_LOG(ERROR) << "rank " << rank_ << " of " << world_size_ << ": " << what;
    }
  }
}

std::optional<std::string> Lifelines::lost() const {
  absl::MutexLock lock(&mu_);
  return lost_;
}

Lifelines::~Lifelines() {
  if (watcher_.joinable()) {
    const char stop = 0;
    (void)!write(wake_[1], &stop, 1);
    watcher_.join();
  }
  for (Peer& p : peers_) {
    if (p.fd < 0) continue;
    WriteFull(p.fd, &kGoodbye, 1);
    close(p.fd);
  }
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace moeserve
