// moeserve-decode-bench: prefill and decode throughput of one model on one backend, straight on
// the model (no scheduler), for several batch sizes. Prints a table; see docs/PERF.md.
//
//   moeserve-decode-bench --model DIR [--device cpu|cuda] [--batch 1,4,16] [--prompt-len 64] [--steps 64]
//
// Per batch size: prefill throughput, decode throughput, mean and median synchronised step time
// after two warm-up steps, and (on a device) caching-allocator misses over the timed steps.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "server/backend/registry.h"
#include "server/common/status_macros.h"
#include "server/model/model.h"

namespace moeserve {
namespace {

struct Options {
  std::string model;
  std::string device = "cpu";
  std::vector<int> batches = {1, 4, 16};
  int prompt_len = 64;
  int steps = 64;
  int threads = 0;
  int block_size = 16;
};

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

absl::Status Run(const Options& o) {
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend({.device = o.device, .num_threads = o.threads}));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, LoadModel(o.model, backend.get()));
  const ModelConfig& c = model->config();
  const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());
  const int per_seq_blocks = (o.prompt_len + o.steps + o.block_size - 1) / o.block_size;
  RETURN_IF_ERROR(model->AllocateKvCache(max_batch * per_seq_blocks, o.block_size));
  std::printf("model %s (%s), device %s, prompt %d, decode steps %d\n", o.model.c_str(),
              std::string(ArchitectureName(c.architecture)).c_str(), o.device.c_str(), o.prompt_len, o.steps);
  std::printf("%6s %14s %14s %14s %14s %8s\n", "batch", "prefill tok/s", "decode tok/s", "decode ms/step",
              "median ms", "misses");

  std::mt19937 rng(0);
  std::uniform_int_distribution<int32_t> token(3, static_cast<int32_t>(c.vocab_size) - 1);
  for (int batch_size : o.batches) {
    std::vector<std::vector<int32_t>> tables(batch_size);
    for (int s = 0; s < batch_size; ++s) {
      tables[s].resize(per_seq_blocks);
      std::iota(tables[s].begin(), tables[s].end(), s * per_seq_blocks);
    }
    ForwardBatch prefill{.block_size = o.block_size};
    for (int s = 0; s < batch_size; ++s) {
      std::vector<int32_t> prompt(o.prompt_len);
      for (int32_t& t : prompt) t = token(rng);
      prefill.AddSequence(prompt, 0, tables[s], true);
    }
    const auto p0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(Tensor logits, model->Forward(prefill));
    RETURN_IF_ERROR(backend->Synchronize());
    const auto p1 = std::chrono::steady_clock::now();
    (void)logits;

    // Each decode step ends with a synchronisation, as sampling would; the first kWarmup steps are
    // not timed (cuBLAS plans, allocator warm-up). Device allocations after warm-up are cache
    // misses of the caching allocator and should be zero.
    constexpr int kWarmup = 2;
    std::vector<double> step_ms;
    int64_t misses = -1;
    const auto d0 = std::chrono::steady_clock::now();
    for (int step = 0; step < o.steps + kWarmup; ++step) {
      if (step == kWarmup) backend->MarkMemory();
      const auto s0 = std::chrono::steady_clock::now();
      ForwardBatch decode{.block_size = o.block_size};
      for (int s = 0; s < batch_size; ++s) decode.AddSequence({token(rng)}, o.prompt_len + step, tables[s], true);
      ASSIGN_OR_RETURN(Tensor out, model->Forward(decode));
      (void)out;
      RETURN_IF_ERROR(backend->Synchronize());
      if (step >= kWarmup) step_ms.push_back(1000.0 * Seconds(s0, std::chrono::steady_clock::now()));
    }
    const auto d1 = std::chrono::steady_clock::now();
    if (absl::StatusOr<DeviceMemoryStats> m = backend->MemoryStats(); m.ok()) misses = m->raw_allocs_since_mark;
    std::sort(step_ms.begin(), step_ms.end());
    const double median_ms = step_ms[step_ms.size() / 2];
    const double decode_s = Seconds(d0, d1) * o.steps / (o.steps + kWarmup);
    std::printf("%6d %14.1f %14.1f %14.2f %14.3f %8lld\n", batch_size, batch_size * o.prompt_len / Seconds(p0, p1),
                batch_size * o.steps / decode_s, 1000.0 * decode_s / o.steps, median_ms,
                static_cast<long long>(misses));
    std::printf("decode batch=%d median_ms=%.3f misses=%lld\n", batch_size, median_ms, static_cast<long long>(misses));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) {
  CLI::App app{"Prefill and decode throughput of a model"};
  moeserve::Options o;
  app.add_option("--model", o.model, "Hugging Face model directory")->required();
  app.add_option("--device", o.device, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--batch", o.batches, "batch sizes")->delimiter(',')->capture_default_str();
  app.add_option("--prompt-len", o.prompt_len, "prompt tokens per sequence")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--steps", o.steps, "decode steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "CPU threads (0 = all)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const absl::Status status = moeserve::Run(o);
  if (!status.ok()) {
    std::fprintf(stderr, "moeserve-decode-bench: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
