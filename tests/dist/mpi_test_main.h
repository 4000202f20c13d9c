#ifndef MOESERVE_TESTS_DIST_MPI_TEST_MAIN_H_
#define MOESERVE_TESTS_DIST_MPI_TEST_MAIN_H_

// The main() of a GoogleTest binary that runs on every rank of an mpirun job: initialises MPI,
// hands the runtime to the tests through *runtime_out, runs them, and makes every rank exit
// non-zero when any rank failed (so mpirun and CTest see a failure on any rank).

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/dist/mpi_communicator.h"

namespace moeserve {

inline int RunTestsOnMpiRanks(int argc, char** argv, const MpiRuntime** runtime_out) {
  ::testing::InitGoogleTest(&argc, argv);
  auto runtime = MpiRuntime::Init();
  if (!runtime.ok()) {
    std::fprintf(stderr, "MPI init failed: %s\n", std::string(runtime.status().message()).c_str());
    return 1;
  }
  *runtime_out = runtime->get();
  const int rc = RUN_ALL_TESTS();
  int any = rc;
  {
    auto host = CreateMpiCommunicator(**runtime, {});
    std::vector<uint8_t> all(static_cast<size_t>((*runtime)->world_size()));
    const uint8_t mine = rc != 0;
    if (!host.ok() || !(*host)->AllGatherHost(absl::MakeConstSpan(&mine, 1), absl::MakeSpan(all)).ok()) return 1;
    for (uint8_t failed : all) any |= failed;
  }
  *runtime_out = nullptr;
  runtime->reset();
  return any;
}

}  // namespace moeserve

#endif  // MOESERVE_TESTS_DIST_MPI_TEST_MAIN_H_
