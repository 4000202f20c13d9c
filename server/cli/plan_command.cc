// `moeserve plan`: per-rank weight bytes, KV bytes per token, KV capacity and whether a model fits
// a group of GPUs, from its config alone (server/runner/parallel_plan.h).

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "server/cli/commands.h"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"
#include "server/model/config.h"
#include "server/runner/kv_memory_plan.h"
#include "server/runner/parallel_plan.h"

namespace moeserve {
namespace {

struct PlanCommandOptions {
  std::string model;
  ParallelPlanOptions plan;
};

absl::Status RunPlan(const PlanCommandOptions& o) {
  const std::filesystem::path path = std::filesystem::is_directory(o.model)
                                         ? std::filesystem::path(o.model) / "config.json"
                                         : std::filesystem::path(o.model);
  ASSIGN_OR_RETURN(std::string json, ReadFileToString(path.string()));
  ASSIGN_OR_RETURN(ModelConfig config, ParseModelConfig(json, path.string()));
  ASSIGN_OR_RETURN(ParallelPlan plan, PlanParallel(config, o.plan));
  std::fputs(plan.ToString(config, o.plan).c_str(), stdout);
  return absl::OkStatus();
}

void AddByteSizeOption(CLI::App* cmd, const std::string& name, int64_t* out, const std::string& help) {
  cmd->add_option_function<std::string>(
      name,
      [name, out](const std::string& text) {
        absl::StatusOr<int64_t> bytes = ParseByteSize(text);
        if (!bytes.ok()) throw CLI::ValidationError(name, std::string(bytes.status().message()));
        *out = *bytes;
      },
      help);
}

}  // namespace

void AddPlanCommand(CLI::App& app, absl::Status* status) {
  auto o = std::make_shared<PlanCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Per-rank weights, KV bytes per token and KV capacity of a model on N GPUs, and whether it fits");
  cmd->add_option("--model", o->model, "model directory or its config.json")->required();
  cmd->add_option("--gpus", o->plan.gpus, "GPUs (ranks) of the group")->required()->check(CLI::Range(1, 1024));
  AddByteSizeOption(cmd, "--gpu-memory", &o->plan.gpu_memory_bytes, "memory of one GPU, e.g. 80GiB (required)");
  cmd->add_option("--tensor-parallel-size,--tp", o->plan.tensor_parallel_size, "default: --gpus")
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--expert-parallel", o->plan.expert_parallel, "whole experts per rank");
  cmd->add_option_function<std::string>(
         "--ep-dispatch", [o](const std::string& v) { o->plan.ep_all_to_all = v == "alltoall"; },
         "as serve's (alltoall: the shared experts whole on every rank)")
      ->check(CLI::IsMember({"allreduce", "alltoall"}));
  cmd->add_option("--gpu-memory-utilization", o->plan.gpu_memory_utilization, "as serve's")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1.0));
  AddByteSizeOption(cmd, "--reserve", &o->plan.reserve_bytes,
                    "per rank for activations, the CUDA context and workspaces (default 4GiB)");
  cmd->add_option("--seq-len", o->plan.seq_len, "tokens per sequence for the concurrency figure")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->callback([o, status] {
    if (o->plan.gpu_memory_bytes <= 0) {
      *status = absl::InvalidArgumentError("plan: --gpu-memory is required (e.g. 80GiB)");
      return;
    }
    *status = RunPlan(*o);
  });
}

}  // namespace moeserve
