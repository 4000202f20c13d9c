#include "server/runner/kv_memory_plan.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/kv/kv_cache_manager.h"

namespace moeserve {
namespace {

std::string GiB(int64_t bytes) { return absl::StrFormat("%.2f GiB", bytes / double(1LL << 30)); }

}  // namespace

absl::StatusOr<int64_t> KvCacheMemoryBudget(const KvMemoryBudgetInputs& in) {
  if (!(in.gpu_memory_utilization > 0.0 && in.gpu_memory_utilization <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu_memory_utilization must be in (0, 1], got ", in.gpu_memory_utilization));
  }
  const int64_t activations = in.activation_peak_bytes + in.graph_reserve_bytes;
  const int64_t available = in.total_bytes - in.used_bytes - activations;
  if (in.kv_cache_memory_bytes > 0) {
    if (in.kv_cache_memory_bytes > available) {
      return absl::ResourceExhaustedError(
          absl::StrCat("kv cache memory ", GiB(in.kv_cache_memory_bytes), " does not fit: device ", GiB(in.total_bytes),
                       " - used ", GiB(in.used_bytes), " - activation peak ", GiB(in.activation_peak_bytes),
                       " - graph reserve ", GiB(in.graph_reserve_bytes), " = ", GiB(available)));
    }
    return in.kv_cache_memory_bytes;
  }
  const int64_t limit =
      static_cast<int64_t>(std::floor(in.gpu_memory_utilization * static_cast<double>(in.total_bytes)));
  const int64_t budget = limit - in.used_bytes - activations;
  if (budget <= 0) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no memory left for the KV cache: used ", GiB(in.used_bytes),
        " (weights, workspaces, context) + activation peak ", GiB(in.activation_peak_bytes), " + CUDA-graph reserve ",
        GiB(in.graph_reserve_bytes), " exceed gpu_memory_utilization ", in.gpu_memory_utilization, " x ",
        GiB(in.total_bytes), " = ", GiB(limit), "; raise --gpu-memory-utilization or lower --max-num-batched-tokens",
        in.graph_reserve_bytes > 0 ? " (or --no-cuda-graphs)" : ""));
  }
  return budget;
}

ForwardBatch ProfileForwardBatch(int32_t num_tokens, int32_t num_seqs, int32_t max_seq_len, int32_t block_size,
                                 int32_t* num_blocks) {
  ForwardBatch batch;
  batch.block_size = block_size;
  num_seqs = std::max(1, std::min(num_seqs, num_tokens));
  max_seq_len = std::max(1, max_seq_len);
  num_tokens = static_cast<int32_t>(std::min<int64_t>(std::max(num_tokens, 1), int64_t{num_seqs} * max_seq_len));
  const int32_t base = num_tokens / num_seqs, extra = num_tokens % num_seqs;
  const int32_t widest = (base + (extra > 0 ? 1 : 0) + block_size - 1) / block_size;
  batch.max_blocks_per_seq = widest;
  int32_t next_block = 1;
  std::vector<int32_t> tokens, table;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int32_t len = base + (s < extra ? 1 : 0);
    tokens.assign(len, 0);
    table.resize((len + block_size - 1) / block_size);
    std::iota(table.begin(), table.end(), next_block);
    next_block += static_cast<int32_t>(table.size());
    batch.AddSequence(tokens, 0, table, true);
  }
  *num_blocks = next_block;
  return batch;
}

std::string KvCachePlan::ToString() const {
  const int32_t num_blocks = layout.num_blocks;
  if (budget_bytes == 0) return absl::StrCat(num_blocks, " KV blocks (explicit)");
  if (!profiled) {
    return absl::StrCat(num_blocks, " KV blocks in ", GiB(budget_bytes),
                        auto_sized ? " (host budget, auto)" : " (host budget)");
  }
  return absl::StrCat(num_blocks, " KV blocks in ", GiB(budget_bytes), " (device ", GiB(total_bytes), ", used ",
                      GiB(used_bytes), ", measured activation peak ", GiB(activation_peak_bytes),
                      graph_reserve_bytes > 0 ? absl::StrCat(", CUDA-graph reserve ", GiB(graph_reserve_bytes)) : "",
                      ")");
}

absl::StatusOr<KvCachePlan> PlanKvCache(Model* model, Backend* backend, const KvCachePlanOptions& o) {
  if (o.block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("block_size must be >= 1, got ", o.block_size));
  }
  KvCachePlan plan;
  plan.layout = KvLayout{.block_size = o.block_size, .num_blocks = o.num_blocks, .spec = model->kv_cache_spec()};
  const int32_t asked_len =
      o.max_model_len > 0 ? o.max_model_len : static_cast<int32_t>(model->config().max_position_embeddings);
  // Tokens the usable blocks hold for one request.
  auto fit_len = [&](const KvLayout& layout) {
    return static_cast<int32_t>(std::min<int64_t>(asked_len, std::max<int64_t>(0, layout.capacity_tokens())));
  };
  if (o.num_blocks > 0) {
    RETURN_IF_ERROR(plan.layout.Validate());
    plan.max_model_len = fit_len(plan.layout);
    return plan;
  }
  const int64_t bytes_per_block = plan.layout.bytes_per_block();
  absl::StatusOr<DeviceMemoryStats> before = backend->MemoryStats();
  if (absl::IsUnimplemented(before.status())) {
    if (o.host_kv_cache_memory_bytes > 0) {
      plan.budget_bytes = o.host_kv_cache_memory_bytes;
    } else {
      constexpr int64_t kMinHostBudget = 64LL << 20;
      const int64_t full_context =
          bytes_per_block * ((static_cast<int64_t>(asked_len) + o.block_size - 1) / o.block_size + 1);
      const int64_t available = o.host_available_bytes > 0 ? o.host_available_bytes : HostAvailableMemoryBytes();
      plan.budget_bytes = std::max(kMinHostBudget, std::min(full_context, available / 4));
      plan.auto_sized = true;
    }
    ASSIGN_OR_RETURN(plan.layout.num_blocks, NumKvBlocksForMemory(plan.budget_bytes, bytes_per_block));
    plan.max_model_len = fit_len(plan.layout);
    return plan;
  }
  RETURN_IF_ERROR(before.status());

  // The profile step on a temporary cache just large enough for it.
  const int32_t max_len =
      o.max_model_len > 0 ? o.max_model_len : static_cast<int32_t>(model->config().max_position_embeddings);
  int32_t profile_blocks = 0;
  const ForwardBatch batch =
      ProfileForwardBatch(o.max_num_batched_tokens, o.max_num_seqs, max_len, o.block_size, &profile_blocks);
  RETURN_IF_ERROR(model->AllocateKvCache(
      KvLayout{.block_size = o.block_size, .num_blocks = profile_blocks, .spec = plan.layout.spec}));
  RETURN_IF_ERROR(backend->Synchronize());
  backend->MarkMemory();
  ASSIGN_OR_RETURN(DeviceMemoryStats start, backend->MemoryStats());
  {
    absl::StatusOr<Tensor> logits = model->Forward(batch);
    if (!logits.ok()) {
      return absl::Status(logits.status().code(),
                          absl::StrCat("KV cache sizing: the profile step (", batch.num_tokens(), " tokens, ",
                                       batch.num_seqs(), " sequences) failed: ", logits.status().message()));
    }
    RETURN_IF_ERROR(backend->Synchronize());
  }
  ASSIGN_OR_RETURN(DeviceMemoryStats peak, backend->MemoryStats());
  plan.activation_peak_bytes = peak.peak_in_use_bytes - start.in_use_bytes;
  if (o.reserve_graph_memory) plan.graph_reserve_bytes = plan.activation_peak_bytes;

  // Drop the temporary cache (one block stays) and measure what is used without it.
  RETURN_IF_ERROR(
      model->AllocateKvCache(KvLayout{.block_size = o.block_size, .num_blocks = 1, .spec = plan.layout.spec}));
  RETURN_IF_ERROR(backend->Synchronize());
  ASSIGN_OR_RETURN(DeviceMemoryStats after, backend->MemoryStats());
  plan.profiled = true;
  plan.total_bytes = after.total_bytes;
  plan.used_bytes = after.total_bytes - after.free_bytes - after.cached_bytes;
  ASSIGN_OR_RETURN(plan.budget_bytes, KvCacheMemoryBudget({.total_bytes = plan.total_bytes,
                                                           .used_bytes = plan.used_bytes,
                                                           .activation_peak_bytes = plan.activation_peak_bytes,
                                                           .graph_reserve_bytes = plan.graph_reserve_bytes,
                                                           .gpu_memory_utilization = o.gpu_memory_utilization,
                                                           .kv_cache_memory_bytes = o.device_kv_cache_memory_bytes}));
  ASSIGN_OR_RETURN(plan.layout.num_blocks, NumKvBlocksForMemory(plan.budget_bytes, bytes_per_block));
  plan.max_model_len = fit_len(plan.layout);
  return plan;
}

absl::StatusOr<KvLayout> AgreeKvLayout(Communicator* group, const KvLayout& mine) {
  const int n = group->world_size();
  if (n == 1) return mine;
  const int32_t sizes[2] = {mine.block_size, mine.num_blocks};
  std::vector<int32_t> all(2 * static_cast<size_t>(n));
  RETURN_IF_ERROR(group->AllGatherHost(HostBytes(absl::MakeConstSpan(sizes)), MutableHostBytes(all)));
  KvLayout agreed = mine;
  for (int r = 0; r < n; ++r) {
    if (all[2 * r] != mine.block_size) {
      return absl::FailedPreconditionError(absl::StrCat("KV layout: rank ", r, " has block size ", all[2 * r],
                                                        ", rank ", group->rank(), " ", mine.block_size));
    }
    agreed.num_blocks = std::min(agreed.num_blocks, all[2 * r + 1]);
  }
  return agreed;
}

int64_t HostAvailableMemoryBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return static_cast<int64_t>(::sysconf(_SC_AVPHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
}

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
    ++digits;
  }
  double value = 0;
  if (digits == 0 || !absl::SimpleAtod(text.substr(0, digits), &value) || value < 0) {
    return absl::InvalidArgumentError(absl::StrCat("not a byte size: \"", text, "\" (e.g. 8GiB, 512MiB, 1000000)"));
  }
  const std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text.substr(digits)));
  double scale = 0;
  if (unit.empty() || unit == "b")
    scale = 1;
  else if (unit == "k" || unit == "kib" || unit == "kb")
    scale = 1024.0;
  else if (unit == "m" || unit == "mib" || unit == "mb")
    scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib" || unit == "gb")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib" || unit == "tb")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else
    return absl::InvalidArgumentError(absl::StrCat("unknown byte-size unit \"", unit, "\" in \"", text, "\""));
  return static_cast<int64_t>(value * scale);
}

}  // namespace moeserve
