#include "server/backend/registry.h"

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(RegistryTest, CreatesCpu) {
  auto b = CreateBackend({.device = "cpu", .num_threads = 2});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), "cpu");
  EXPECT_EQ((*b)->activation_dtype(), DType::kF32);
}

TEST(RegistryTest, AutoPicksCudaWhenAvailableElseCpu) {
  auto b = CreateBackend({.device = "auto", .num_threads = 2});
  ASSERT_TRUE(b.ok()) << b.status();
  const bool cuda_available = CreateBackend({.device = "cuda"}).ok();
  EXPECT_EQ((*b)->name(), cuda_available ? "cuda" : "cpu");
}

TEST(RegistryTest, CudaIsCudaOrUnavailable) {
  auto b = CreateBackend({.device = "cuda"});
  if (b.ok()) {
    EXPECT_EQ((*b)->name(), "cuda");
  } else {
    // Without the CUDA backend: "moeserve was built without the CUDA backend"; with it but no GPU,
    // the adapter's own Unavailable.
    EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable) << b.status();
  }
}

TEST(RegistryTest, UnknownDevice) {
  EXPECT_EQ(CreateBackend({.device = "tpu"}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moeserve
