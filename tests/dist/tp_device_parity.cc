// dist_tp_device_parity: TP=1 against TP=N on any device, one process per rank under mpirun (the
// GPU check's tensor-parallel step, tools/gpu-check.sh; CTest runs it on CPU ranks).
//
//   mpirun -np N dist_tp_device_parity --tp N --device cuda|cpu [--expert-parallel
//       [--ep-dispatch allreduce|alltoall]] [--tolerance X] DIR...
//
// Every rank loads its shard of each model DIR on its device (GPU = local rank) through the
// communicator DistContext picks (NCCL for CUDA, MPI for the CPU); rank 0 also loads the whole
// model on its device. A prompt batch of two sequences and 6 greedy decode steps (the whole
// model's ids fed to both) must give logits within the tolerance (max |a - b| / max |b|; default
// 2e-5 on the CPU, 3e-2 on CUDA's bf16 activations). Rank 0 prints a PASS or FAIL line per model
// with the error and how many greedy ids agree; exit 0 when every model passes on every rank.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "server/backend/registry.h"
#include "server/dist/registry.h"
#include "server/model/model.h"
#include "server/model/parallel.h"

namespace moeserve {
namespace {

constexpr int32_t kBlockSize = 4;
constexpr int32_t kBlocks = 24;
constexpr int kDecodeSteps = 6;

struct Options {
  int tp = 1;
  std::string device = "cpu";
  bool expert_parallel = false;
  EpDispatch ep_dispatch = EpDispatch::kAllReduce;
  double tolerance = -1;  // < 0: the device's default
  std::vector<std::string> models;
};

absl::StatusOr<std::vector<float>> Logits(Model& model, Backend& backend, const ForwardBatch& batch) {
  absl::StatusOr<Tensor> logits = model.Forward(batch);
  if (!logits.ok()) return logits.status();
  std::vector<float> host(static_cast<size_t>(logits->numel()));
  if (absl::Status s = backend.CopyToHostF32(*logits, absl::MakeSpan(host)); !s.ok()) return s;
  return host;
}

double RelErr(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < b.size() && i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return a.size() == b.size() ? diff / scale : INFINITY;
}

std::vector<int32_t> Argmax(const std::vector<float>& logits, int64_t vocab) {
  std::vector<int32_t> ids;
  for (size_t row = 0; (row + 1) * vocab <= logits.size(); ++row) {
    const auto first = logits.begin() + static_cast<int64_t>(row) * vocab;
    ids.push_back(static_cast<int32_t>(std::max_element(first, first + vocab) - first));
  }
  return ids;
}

// One model: true when it passes. Collective: every rank runs the same steps (rank 0 decides the
// ids and broadcasts them, so the sharded model sees the same inputs everywhere).
absl::StatusOr<bool> CheckModel(const std::string& dir, const Options& o, double tolerance, DistContext& dist,
                                Backend& backend, Communicator& comm) {
  const bool leader = dist.rank() == 0;
  std::unique_ptr<Backend> whole_backend;
  std::unique_ptr<Model> whole;
  if (leader) {
    absl::StatusOr<std::unique_ptr<Backend>> b =
        CreateBackend({.device = o.device, .num_threads = 1, .device_index = dist.local_rank()});
    if (!b.ok()) return b.status();
    whole_backend = std::move(*b);
    absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(dir, whole_backend.get(), {.max_model_len = 64});
    if (!m.ok()) return m.status();
    whole = std::move(*m);
    if (absl::Status s = whole->AllocateKvCache(KvLayoutFor(*whole, kBlocks, kBlockSize)); !s.ok()) return s;
  }
  absl::StatusOr<std::unique_ptr<Model>> sharded = LoadModel(
      dir, &backend, {.max_model_len = 64, .parallel = ModelParallel(&comm, o.expert_parallel, o.ep_dispatch)});
  if (!sharded.ok()) return sharded.status();
  Model& b = **sharded;
  if (absl::Status s = b.AllocateKvCache(KvLayoutFor(b, kBlocks, kBlockSize)); !s.ok()) return s;
  const int64_t vocab = b.config().vocab_size;

  const std::vector<int32_t> table_a = {1, 2, 3, 4, 5}, table_b = {6, 7, 8, 9, 10};
  std::vector<int32_t> prompt_a = {1, 5, 9, 13, 17, 21, 25, 29, 33}, prompt_b = {3, 4, 5};
  for (int32_t& t : prompt_a) t %= static_cast<int32_t>(vocab);
  std::vector<int32_t> ids(2, 0);
  int32_t len_a = 0, len_b = 0;
  double worst = 0;
  int agree = 0, total = 0;
  for (int step = 0; step <= kDecodeSteps; ++step) {
    ForwardBatch batch{.block_size = kBlockSize};
    if (step == 0) {
      batch.AddSequence(prompt_a, 0, table_a, true);
      batch.AddSequence(prompt_b, 0, table_b, true);
      len_a = static_cast<int32_t>(prompt_a.size());
      len_b = static_cast<int32_t>(prompt_b.size());
    } else {
      batch.AddSequence({ids[0]}, len_a++, table_a, true);
      batch.AddSequence({ids[1]}, len_b++, table_b, true);
    }
    absl::StatusOr<std::vector<float>> lb = Logits(b, backend, batch);
    if (!lb.ok()) return lb.status();
    if (leader) {
      absl::StatusOr<std::vector<float>> la = Logits(*whole, *whole_backend, batch);
      if (!la.ok()) return la.status();
      worst = std::max(worst, RelErr(*lb, *la));
      ids = Argmax(*la, vocab);
      const std::vector<int32_t> got = Argmax(*lb, vocab);
      for (size_t i = 0; i < ids.size(); ++i) agree += i < got.size() && got[i] == ids[i];
      total += static_cast<int>(ids.size());
    }
    if (absl::Status s = dist.host()->BroadcastHost(MutableHostBytes(ids), 0); !s.ok()) {
      return s;
    }
  }
  const bool pass = worst <= tolerance;
  if (leader) {
    std::printf(
        "%s tp=%d%s %s: max logits error %.2e (tolerance %.1e), greedy ids %d/%d agree, weights %lld of %lld "
        "bytes on rank 0\n",
        pass ? "PASS" : "FAIL", dist.world_size(),
        !o.expert_parallel                       ? ""
        : o.ep_dispatch == EpDispatch::kAllToAll ? " ep-a2a"
                                                 : " ep",
        dir.c_str(), worst, tolerance, agree, total, static_cast<long long>(b.weight_bytes()),
        static_cast<long long>(whole->weight_bytes()));
    std::fflush(stdout);
  }
  uint8_t verdict = pass ? 1 : 0;
  if (absl::Status s = dist.host()->BroadcastHost(absl::MakeSpan(&verdict, 1), 0); !s.ok()) return s;
  return verdict == 1;
}

int Run(const Options& o) {
  absl::StatusOr<std::unique_ptr<DistContext>> dist =
      DistContext::Create({.tensor_parallel_size = o.tp, .collective_timeout = absl::Seconds(120)});
  if (!dist.ok()) {
    std::fprintf(stderr, "dist_tp_device_parity: %s\n", std::string(dist.status().message()).c_str());
    return 1;
  }
  const double tolerance = o.tolerance >= 0 ? o.tolerance : (o.device == "cpu" ? 2e-5 : 3e-2);
  int rc = 0;
  {
    absl::StatusOr<std::unique_ptr<Backend>> backend =
        CreateBackend({.device = o.device, .num_threads = 1, .device_index = (*dist)->local_rank()});
    if (!backend.ok()) {
      std::fprintf(stderr, "dist_tp_device_parity: %s\n", std::string(backend.status().message()).c_str());
      return 1;
    }
    absl::StatusOr<std::unique_ptr<Communicator>> comm = (*dist)->CreateCommunicator(backend->get());
    if (!comm.ok()) {
      std::fprintf(stderr, "dist_tp_device_parity: %s\n", std::string(comm.status().message()).c_str());
      return 1;
    }
    for (const std::string& dir : o.models) {
      absl::StatusOr<bool> ok = CheckModel(dir, o, tolerance, **dist, **backend, **comm);
      if (!ok.ok()) {
        std::fprintf(stderr, "FAIL rank %d %s: %s\n", (*dist)->rank(), dir.c_str(),
                     std::string(ok.status().message()).c_str());
        return 1;  // a rank out of step: mpirun ends the others
      }
      if (!*ok) rc = 1;
    }
  }
  return rc;
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) {
  moeserve::Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tp" && i + 1 < argc && absl::SimpleAtoi(argv[i + 1], &o.tp)) {
      ++i;
    } else if (a == "--device" && i + 1 < argc) {
      o.device = argv[++i];
    } else if (a == "--expert-parallel") {
      o.expert_parallel = true;
    } else if (a == "--ep-dispatch" && i + 1 < argc && moeserve::ParseEpDispatch(argv[i + 1]).ok()) {
      o.ep_dispatch = *moeserve::ParseEpDispatch(argv[++i]);
    } else if (a == "--tolerance" && i + 1 < argc && absl::SimpleAtod(argv[i + 1], &o.tolerance)) {
      ++i;
    } else if (!a.empty() && a[0] != '-') {
      o.models.push_back(a);
    } else {
      std::fprintf(stderr,
                   "usage: mpirun -np N %s --tp N --device cpu|cuda [--expert-parallel [--ep-dispatch "
                   "allreduce|alltoall]] [--tolerance X] DIR...\n",
                   argv[0]);
      return 2;
    }
  }
  if (o.models.empty()) {
    std::fprintf(stderr, "dist_tp_device_parity: no model directory given\n");
    return 2;
  }
  return moeserve::Run(o);
}
