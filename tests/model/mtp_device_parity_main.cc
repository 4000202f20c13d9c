// DeepSeek-V3 MTP on a device backend against the torch reference (tools/mtp_reference.py): the
// fixture tests/fixtures/models/deepseek_v3_mtp loaded with its MTP layer, teacher-forced MTP
// logits at every position and three drafts chained through the MTP's own hidden state, each
// row compared with reference_mtp.safetensors by max|diff| / max|ref|. Plain main (no GoogleTest)
// so that tools/gpu-check.sh runs it on the GPU machine; CTest runs it on the CPU (fp32, tight
// tolerance) and with --device cuda (exit 77 without a GPU).
//
//   mtp_device_parity --device cuda|cpu --model DIR [--tolerance 3e-2]
// Prints one PASS/FAIL line per check; exit 0 when all pass, 1 otherwise, 77 when the device is
// absent.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "server/backend/registry.h"
#include "server/model/forward_batch.h"
#include "server/model/model.h"
#include "server/model/safetensors.h"

namespace moeserve {
namespace {

constexpr int32_t kBlockSize = 16;

template <typename T>
std::vector<T> Read(const SafetensorsFile& file, const std::string& name) {
  const TensorInfo* info = file.Find(name);
  if (info == nullptr) return {};
  std::vector<T> v(static_cast<size_t>(info->numel));
  std::memcpy(v.data(), file.Data(*info).data(), std::min(info->nbytes, v.size() * sizeof(T)));
  return v;
}

ForwardBatch Batch(const std::vector<int32_t>& tokens, int32_t first, bool all_logits) {
  ForwardBatch b;
  b.block_size = kBlockSize;
  const std::vector<int32_t> table = {1, 2};
  b.max_blocks_per_seq = 2;
  b.AddSequence(tokens, first, table, !all_logits);
  if (all_logits) {
    for (int32_t r = 0; r < static_cast<int32_t>(tokens.size()); ++r) b.logits_indices.push_back(r);
  }
  return b;
}

int32_t Argmax(const float* row, int64_t n) { return static_cast<int32_t>(std::max_element(row, row + n) - row); }

// Rows of got vs want [rows, n]: max|diff|/max|ref| <= tol each, and the same argmax where the
// reference's top-2 gap exceeds the tolerance (a near-tie may flip in bf16).
bool Compare(const char* what, const std::vector<float>& got, const float* want, int64_t rows, int64_t n, double tol) {
  double worst = 0.0;
  bool ok = static_cast<int64_t>(got.size()) == rows * n;
  for (int64_t r = 0; ok && r < rows; ++r) {
    double diff = 0.0, ref = 0.0;
    for (int64_t v = 0; v < n; ++v) {
      const double g = got[r * n + v];
      if (std::isnan(g)) ok = false;
      diff = std::max(diff, std::fabs(g - want[r * n + v]));
      ref = std::max(ref, std::fabs(static_cast<double>(want[r * n + v])));
    }
    worst = std::max(worst, diff / ref);
    std::vector<float> sorted(want + r * n, want + (r + 1) * n);
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    if ((sorted[0] - sorted[1]) / ref > tol && Argmax(got.data() + r * n, n) != Argmax(want + r * n, n)) {
      ok = false;
    }
  }
  ok = ok && worst <= tol;
  std::printf("%s %s: %lld rows, max rel diff %.3g (tolerance %.3g)\n", ok ? "PASS" : "FAIL", what,
              static_cast<long long>(rows), worst, tol);
  return ok;
}

int Main(int argc, char** argv) {
  std::string device = "cpu", dir;
  double tol = -1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--device")
      device = argv[i + 1];
    else if (a == "--model")
      dir = argv[i + 1];
    else if (a == "--tolerance")
      tol = std::atof(argv[i + 1]);
  }
  if (dir.empty()) {
    std::printf("usage: mtp_device_parity --device cuda|cpu --model DIR [--tolerance X]\n");
    return 2;
  }
  auto backend = CreateBackend({.device = device, .num_threads = 2, .exact_cpu_gemm = true});  // exact CPU reference
  if (!backend.ok()) {
    std::printf("SKIP no %s backend: %s\n", device.c_str(), std::string(backend.status().message()).c_str());
    return 77;
  }
  if (tol < 0) tol = (*backend)->activation_dtype() == DType::kF32 ? 1e-4 : 3e-2;
  auto model = LoadModel(dir, backend->get(), {.load_mtp = true});
  auto ref = SafetensorsFile::Open(dir + "/reference_mtp.safetensors");
  if (!model.ok() || !ref.ok()) {
    std::printf("FAIL loading: %s %s\n", std::string(model.status().message()).c_str(),
                std::string(ref.status().message()).c_str());
    return 1;
  }
  Model& m = **model;
  Backend& b = **backend;
  if (!m.AllocateKvCache(KvLayoutFor(m, 4, kBlockSize)).ok()) return 1;
  auto host = [&](const Tensor& t) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    if (!b.CopyToHostF32(t, absl::MakeSpan(v)).ok()) v.clear();
    return v;
  };
  const std::vector<int32_t> ids = Read<int32_t>(**ref, "token_ids");
  const int32_t t = static_cast<int32_t>(ids.size());
  const int64_t d = m.config().hidden_size, vocab = m.config().vocab_size;
  bool ok = true;

  Tensor hidden;
  if (!m.ForwardWithHidden(Batch(ids, 0, false), &hidden).ok()) return 1;
  ok &= Compare("main hidden", host(hidden), Read<float>(**ref, "main_hidden").data(), t, d, tol);
  const std::vector<int32_t> next(ids.begin() + 1, ids.end());
  auto forced = m.ForwardMtp(Batch(next, 0, true), hidden.Slice(0, t - 1));
  if (!forced.ok()) {
    std::printf("FAIL ForwardMtp: %s\n", std::string(forced.status().message()).c_str());
    return 1;
  }
  ok &= Compare("mtp teacher-forced logits", host(forced->logits), Read<float>(**ref, "mtp_logits").data(), t - 1,
                vocab, tol);

  // The chain from a fresh cache: the prompt's MTP rows, then one position at a time.
  const int32_t p = Read<int32_t>(**ref, "chain_prompt").at(0);
  const std::vector<int32_t> want_ids = Read<int32_t>(**ref, "chain_ids");
  const std::vector<float> want = Read<float>(**ref, "chain_logits");
  Tensor prompt_hidden;
  const std::vector<int32_t> prompt(ids.begin(), ids.begin() + p);
  if (!m.ForwardWithHidden(Batch(prompt, 0, false), &prompt_hidden).ok()) return 1;
  auto out = m.ForwardMtp(Batch(std::vector<int32_t>(ids.begin() + 1, ids.begin() + p + 1), 0, false), prompt_hidden);
  if (!out.ok()) return 1;
  Tensor prev = out->hidden.Slice(p - 1, 1);
  std::vector<float> got = host(out->logits);
  std::vector<float> chained;
  std::vector<int32_t> drafts;
  for (size_t j = 0; j < want_ids.size(); ++j) {
    chained.insert(chained.end(), got.begin(), got.end());
    drafts.push_back(Argmax(got.data(), vocab));
    if (j + 1 == want_ids.size()) break;
    auto step = m.ForwardMtp(Batch({drafts.back()}, p + static_cast<int32_t>(j), false), prev);
    if (!step.ok()) return 1;
    prev = step->hidden;
    got = host(step->logits);
  }
  ok &= Compare("mtp chained logits", chained, want.data(), static_cast<int64_t>(want_ids.size()), vocab, tol);
  const bool same = drafts == want_ids;
  std::printf("%s mtp chained drafts: %d %d %d (reference %d %d %d)\n", same ? "PASS" : "FAIL", drafts[0],
              drafts.size() > 1 ? drafts[1] : -1, drafts.size() > 2 ? drafts[2] : -1, want_ids[0], want_ids[1],
              want_ids[2]);
  return ok && same ? 0 : 1;
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) { return moeserve::Main(argc, argv); }
