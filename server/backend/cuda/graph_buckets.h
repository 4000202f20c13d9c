#ifndef MOESERVE_SERVER_BACKEND_CUDA_GRAPH_BUCKETS_H_
#define MOESERVE_SERVER_BACKEND_CUDA_GRAPH_BUCKETS_H_

// Batch-size buckets for captured decode-step CUDA graphs: 1, 2, 4, 8, then every 8 up to
// max_batch (vLLM's sizes). A pure-decode batch of n sequences replays the graph of the smallest
// bucket >= n, padded with rows whose slot_mapping is -1 and seq_len 1 (they write nothing).
// Plain C++ (unit-tested in tests/cuda/graph_buckets_test.cc); capture and replay: server/runner/decode_graph_runner.h.

#include <cstdint>
#include <vector>

namespace moeserve::cuda_graphs {

inline std::vector<int32_t> DecodeBuckets(int32_t max_batch) {
  std::vector<int32_t> b;
  for (int32_t s : {1, 2, 4}) {
    if (s <= max_batch) b.push_back(s);
  }
  for (int32_t s = 8; s <= max_batch; s += 8) b.push_back(s);
  if (max_batch > 0 && (b.empty() || b.back() != max_batch)) b.push_back(max_batch);
  return b;
}

// The smallest bucket holding n rows, or -1 (run eagerly) when n exceeds every bucket or n < 1.
inline int32_t ChooseBucket(const std::vector<int32_t>& buckets, int32_t n) {
  if (n < 1) return -1;
  for (int32_t s : buckets) {
    if (s >= n) return s;
  }
  return -1;
}

}  // namespace moeserve::cuda_graphs

#endif  // MOESERVE_SERVER_BACKEND_CUDA_GRAPH_BUCKETS_H_
