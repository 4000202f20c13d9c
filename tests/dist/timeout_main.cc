// A group in which rank 1 hangs (sleeps outside MPI) or dies while rank 0 waits in a collective.
// Run under mpirun by run_timeout_test.sh, which checks that the whole group ends non-zero within
// the timeout with a message naming rank 1.
//   timeout_main hang|die

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "server/backend/cpu/cpu_backend.h"
#include "server/common/logging.h"
#include "server/dist/registry.h"

int main(int argc, char** argv) {
  using namespace moeserve;
  const std::string mode = argc > 1 ? argv[1] : "hang";
  auto dist = DistContext::Create({.tensor_parallel_size = 2, .collective_timeout = absl::Seconds(2)});
  if (!dist.ok()) {
    std::fprintf(stderr, "%s\n", std::string(dist.status().message()).c_str());
    return 2;
  }
  CpuBackend cpu(1);
  auto comm = (*dist)->CreateCommunicator(&cpu);
  if (!comm.ok()) return 2;
  auto x = cpu.Allocate(DType::kF32, {4});
  if (!(*comm)->AllReduce(*x).ok()) return 2;  // a healthy collective first
  if ((*dist)->rank() == 1) {
    if (mode == "die") std::raise(SIGKILL);                 // as `kill -9` would
    std::this_thread::sleep_for(std::chrono::seconds(60));  // hung: never reaches the collective
    return 0;
  }
  const absl::Status s = (*comm)->AllReduce(*x);
  if (s.ok()) return 4;  // rank 1 never joins: must not complete
  (*comm)->Abort(s);
}
