#ifndef MOESERVE_TESTS_MODEL_MODEL_TEST_UTIL_H_
#define MOESERVE_TESTS_MODEL_MODEL_TEST_UTIL_H_

// Shared by the tests that compare a loaded model with transformers' reference outputs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/model/model.h"
#include "server/model/safetensors.h"

namespace moeserve::testing {

// Tensor `name` of a reference file as a vector of T (empty when absent).
template <typename T>
std::vector<T> ReadTensor(const SafetensorsFile& file, const std::string& name) {
  const TensorInfo* info = file.Find(name);
  if (info == nullptr) return {};
  EXPECT_EQ(info->nbytes, static_cast<size_t>(info->numel) * sizeof(T)) << name;
  std::vector<T> v(static_cast<size_t>(info->numel));
  std::memcpy(v.data(), file.Data(*info).data(), std::min<size_t>(info->nbytes, v.size() * sizeof(T)));
  return v;
}

inline int32_t Argmax(const float* row, int64_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

// Rows [0, rows) of got vs want ([rows, vocab] each): no NaN, max|Δ| / max|ref| ≤ tolerance per
// row, and the same argmax.
inline void ExpectLogitsMatch(const std::vector<float>& got, const float* want, int64_t rows, int64_t vocab,
                              const std::string& what, double tolerance = 1e-4) {
  ASSERT_EQ(static_cast<int64_t>(got.size()), rows * vocab) << what;
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = got.data() + r * vocab;
    const float* w = want + r * vocab;
    double max_diff = 0.0, max_ref = 0.0;
    for (int64_t v = 0; v < vocab; ++v) {
      ASSERT_FALSE(std::isnan(g[v])) << what << " row " << r << " has NaN";
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(g[v]) - w[v]));
      max_ref = std::max(max_ref, std::fabs(static_cast<double>(w[v])));
    }
    EXPECT_LE(max_diff / max_ref, tolerance) << what << " row " << r;
    EXPECT_EQ(Argmax(g, vocab), Argmax(w, vocab)) << what << " row " << r;
  }
}

// A model loaded on the CPU backend with its KV cache, running ForwardBatches to host logits.
class LoadedModel {
 public:
  // Fails the current test (ASSERT-style: check ok()) when loading fails.
  LoadedModel(const std::string& dir, int32_t num_blocks, int32_t block_size, const LoadModelOptions& options = {}) {
    // The exact path (fp32 activations in every product): the references are fp32 transformers runs.
    auto backend = CreateBackend({.device = "cpu", .num_threads = 2, .exact_cpu_gemm = true});
    EXPECT_TRUE(backend.ok()) << backend.status();
    if (!backend.ok()) return;
    backend_ = std::move(*backend);
    auto model = LoadModel(dir, backend_.get(), options);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return;
    model_ = std::move(*model);
    EXPECT_TRUE(model_->AllocateKvCache(KvLayoutFor(*model_, num_blocks, block_size)).ok());
  }

  bool ok() const { return model_ != nullptr; }
  Model& model() { return *model_; }
  Backend& backend() { return *backend_; }
  int64_t vocab() const { return model_->config().vocab_size; }

  // Logits of batch.logits_indices as host fp32 [n, vocab]; empty on failure (test fails).
  std::vector<float> Run(const ForwardBatch& batch) {
    auto logits = model_->Forward(batch);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return {};
    std::vector<float> host(static_cast<size_t>(logits->numel()));
    EXPECT_TRUE(backend_->CopyToHostF32(*logits, absl::MakeSpan(host)).ok());
    return host;
  }

 private:
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
};

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_MODEL_MODEL_TEST_UTIL_H_
