// moeserve-decode-bench: prefill and decode throughput of one model on one backend, straight on
// the model (no scheduler), for several batch sizes. Prints a table; see docs/PERF.md.
//
//   moeserve-decode-bench --model DIR [--device cpu|cuda] [--batch 1,4,16] [--prompt-len 64] [--steps 64]
//                         [--cuda-graphs on|off|both] [--exact-gemm]
//   mpirun -np N moeserve-decode-bench --model DIR --tensor-parallel-size N [--expert-parallel] ...
//
// Per batch size: prefill throughput, decode throughput, mean and median synchronised step time
// after two warm-up steps, and (on a device) caching-allocator misses over the timed steps. With
// CUDA graphs on, decode steps go through DecodeGraphRunner (recorded during the warm-up steps,
// replayed in the timed ones); `both` prints an eager and a graph row per batch size. On a backend
// without graphs only eager rows are printed.
//
// With --tensor-parallel-size N (under mpirun) every rank runs its shard of the model over the same
// batches (same seed; no scheduler, so nothing is broadcast) and rank 0 prints; the last columns
// are the milliseconds per decode step rank 0 spent in collectives (waiting for the other ranks
// included) and their share of the step.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "server/backend/registry.h"
#include "server/common/status_macros.h"
#include "server/dist/registry.h"
#include "server/dist/timed_communicator.h"
#include "server/model/model.h"
#include "server/runner/decode_graph_runner.h"

namespace moeserve {
namespace {

struct Options {
  std::string model;
  std::string device = "cpu";
  std::vector<int> batches = {1, 4, 16};
  int prompt_len = 64;
  int steps = 64;
  int threads = 0;
  bool exact_gemm = false;  // CPU: fp32 activations in every product (the reference path)
  int block_size = 16;
  std::string cuda_graphs = "both";  // on, off, both
  int tensor_parallel_size = 1;
  bool expert_parallel = false;
  std::string ep_dispatch = "allreduce";
};

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

absl::Status Run(const Options& o) {
  ASSIGN_OR_RETURN(std::unique_ptr<DistContext> dist,
                   DistContext::Create({.tensor_parallel_size = o.tensor_parallel_size}));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend({.device = o.device,
                                                                    .num_threads = o.threads,
                                                                    .device_index = dist->local_rank(),
                                                                    .exact_cpu_gemm = o.exact_gemm}));
  ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, dist->CreateCommunicator(backend.get()));
  TimedCommunicator timed(comm.get());
  const bool leader = dist->rank() == 0;
  ASSIGN_OR_RETURN(const EpDispatch dispatch, ParseEpDispatch(o.ep_dispatch));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                   LoadModel(o.model, backend.get(), {.parallel = ModelParallel(&timed, o.expert_parallel, dispatch)}));
  const ModelConfig& c = model->config();
  const bool model_parallel_all_to_all = ModelParallel(&timed, o.expert_parallel, dispatch).ep_all_to_all();
  const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());
  constexpr int kWarmup = 2;
  const int max_len = o.prompt_len + o.steps + kWarmup;
  const int per_seq_blocks = (max_len + o.block_size - 1) / o.block_size;
  // Block 0 is left alone: it is the null block padded graph rows read.
  RETURN_IF_ERROR(model->AllocateKvCache(KvLayoutFor(*model, max_batch * per_seq_blocks + 1, o.block_size)));
  std::vector<bool> graph_modes;
  if (o.cuda_graphs != "on") graph_modes.push_back(false);
  // The all-to-all expert dispatch reads the routing on the host: no graphs.
  if (o.cuda_graphs != "off" && backend->graphs() != nullptr && !model_parallel_all_to_all) graph_modes.push_back(true);
  if (graph_modes.empty()) graph_modes.push_back(false);  // "on" without graphs: eager rows
  std::unique_ptr<DecodeGraphRunner> graphs;
  if (graph_modes.back()) {
    graphs = DecodeGraphRunner::Create(model.get(), backend.get(), {.max_batch = max_batch, .max_model_len = max_len});
  }
  if (leader) {
    std::printf(
        "model %s (%s), device %s, prompt %d, decode steps %d, tensor parallel %d%s, %.1f MiB of weights "
        "per rank\n",
        o.model.c_str(), c.architecture.c_str(), o.device.c_str(), o.prompt_len, o.steps, o.tensor_parallel_size,
        o.expert_parallel
            ? (dispatch == EpDispatch::kAllToAll ? " (expert parallel, all-to-all)" : " (expert parallel)")
            : "",
        model->weight_bytes() / 1048576.0);
    std::printf("%6s %6s %14s %14s %14s %14s %8s %10s %8s\n", "batch", "graphs", "prefill tok/s", "decode tok/s",
                "decode ms/step", "median ms", "misses", "coll ms", "coll %");
  }

  std::mt19937 rng(0);
  std::uniform_int_distribution<int32_t> token(3, static_cast<int32_t>(c.vocab_size) - 1);
  for (int batch_size : o.batches) {
    for (const bool use_graphs : graph_modes) {
      std::vector<std::vector<int32_t>> tables(batch_size);
      for (int s = 0; s < batch_size; ++s) {
        tables[s].resize(per_seq_blocks);
        std::iota(tables[s].begin(), tables[s].end(), 1 + s * per_seq_blocks);
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
      // not timed (cuBLAS plans, allocator warm-up, graph recording). Device allocations after
      // warm-up are cache misses of the caching allocator and should be zero.
      std::vector<double> step_ms;
      int64_t misses = -1;
      const auto d0 = std::chrono::steady_clock::now();
      for (int step = 0; step < o.steps + kWarmup; ++step) {
        if (step == kWarmup) {
          backend->MarkMemory();
          timed.Reset();
        }
        const auto s0 = std::chrono::steady_clock::now();
        ForwardBatch decode{.block_size = o.block_size};
        for (int s = 0; s < batch_size; ++s) decode.AddSequence({token(rng)}, o.prompt_len + step, tables[s], true);
        Tensor out;
        if (use_graphs) {
          ASSIGN_OR_RETURN(out, graphs->Run(decode));
        }
        if (!out.defined()) {
          ASSIGN_OR_RETURN(out, model->Forward(decode));
        }
        RETURN_IF_ERROR(backend->Synchronize());
        if (step >= kWarmup) step_ms.push_back(1000.0 * Seconds(s0, std::chrono::steady_clock::now()));
      }
      const auto d1 = std::chrono::steady_clock::now();
      if (absl::StatusOr<DeviceMemoryStats> m = backend->MemoryStats(); m.ok()) misses = m->raw_allocs_since_mark;
      std::sort(step_ms.begin(), step_ms.end());
      const double median_ms = step_ms[step_ms.size() / 2];
      const double decode_s = Seconds(d0, d1) * o.steps / (o.steps + kWarmup);
      const char* mode = use_graphs ? "on" : "off";
      const double mean_ms = 1000.0 * decode_s / o.steps;
      const double coll_ms = 1000.0 * absl::ToDoubleSeconds(timed.total_time()) / o.steps;
      if (!leader) continue;
      std::printf("%6d %6s %14.1f %14.1f %14.2f %14.3f %8lld %10.3f %7.1f%%\n", batch_size, mode,
                  batch_size * o.prompt_len / Seconds(p0, p1), batch_size * o.steps / decode_s, mean_ms, median_ms,
                  static_cast<long long>(misses), coll_ms, 100.0 * coll_ms / mean_ms);
      std::printf("decode batch=%d graphs=%s median_ms=%.3f misses=%lld coll_ms=%.3f\n", batch_size, mode, median_ms,
                  static_cast<long long>(misses), coll_ms);
      if (dist->world_size() > 1) {
        // What rank 0's collectives moved per decode step, by kind (operand bytes, as counted).
        std::string line = absl::StrFormat("collectives batch=%d per step:", batch_size);
        for (int op = 0; op < TimedCommunicator::kNumOps; ++op) {
          const TimedCommunicator::Counter& k = timed.stats()[op];
          if (k.calls == 0) continue;
          absl::StrAppendFormat(&line, " %s %.1f calls %.0f B;",
                                TimedCommunicator::OpName(static_cast<TimedCommunicator::Op>(op)),
                                static_cast<double>(k.calls) / o.steps, static_cast<double>(k.bytes) / o.steps);
        }
        std::printf("%s\n", line.c_str());
      }
    }
  }
  if (graphs != nullptr && leader) {
    std::printf("cuda graphs: %d recorded, %lld replays\n", graphs->num_graphs(),
                static_cast<long long>(graphs->replays()));
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
  app.add_option("--prompt-len", o.prompt_len, "prompt tokens per sequence")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--steps", o.steps, "decode steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "CPU threads (0 = all)")->capture_default_str();
  app.add_option("--cuda-graphs", o.cuda_graphs, "decode through CUDA graphs: on, off or both (a row each)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off", "both"}));
  app.add_option("--tensor-parallel-size,--tp", o.tensor_parallel_size, "ranks (run under mpirun -np N)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_flag("--expert-parallel", o.expert_parallel, "MoE experts whole per rank");
  app.add_flag("--exact-gemm", o.exact_gemm, "CPU: fp32 activations in every product (no bf16 dot product)");
  app.add_option("--ep-dispatch", o.ep_dispatch,
                 "expert-parallel token exchange: allreduce or alltoall (no CUDA graphs: --cuda-graphs off)")
      ->capture_default_str()
      ->check(CLI::IsMember({"allreduce", "alltoall"}));
  CLI11_PARSE(app, argc, argv);
  const absl::Status status = moeserve::Run(o);
  if (!status.ok()) {
    std::fprintf(stderr, "moeserve-decode-bench: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
