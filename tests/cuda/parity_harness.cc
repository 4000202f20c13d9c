// Shared pieces of the parity harness: see parity_harness.h.

#include "tests/cuda/parity_harness.h"

#include <algorithm>
#include <cmath>

#include "server/common/numeric.h"

namespace moeserve::parity {

std::vector<float> Harness::Rand(int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = Bf16ToFloat(FloatToBf16(d(rng)));
  return v;
}

[[noreturn]] void Die(const absl::Status& s, const std::string& where) {
  std::fprintf(stderr, "FATAL %s: %s\n", where.c_str(), s.ToString().c_str());
  std::exit(2);
}

Tensor Act(Backend& b, const std::vector<float>& v, Shape shape) {
  auto t = b.Allocate(b.activation_dtype(), shape);
  if (!t.ok()) Die(t.status(), "Allocate");
  if (b.activation_dtype() == DType::kF32) {
    PARITY_CHECK_OK(b.CopyFromHost(HostBytes(v), *t));
  } else {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = FloatToBf16(v[i]);
    PARITY_CHECK_OK(b.CopyFromHost(HostBytes(h), *t));
  }
  return *t;
}
Tensor F32(Backend& b, const std::vector<float>& v, Shape shape) {
  auto t = b.Allocate(DType::kF32, shape);
  if (!t.ok()) Die(t.status(), "Allocate");
  PARITY_CHECK_OK(b.CopyFromHost(HostBytes(v), *t));
  return *t;
}
Tensor I32(Backend& b, const std::vector<int32_t>& v, Shape shape) {
  auto t = b.Allocate(DType::kI32, shape);
  if (!t.ok()) Die(t.status(), "Allocate");
  if (!v.empty()) PARITY_CHECK_OK(b.CopyFromHost(HostBytes(v), *t));
  return *t;
}
Tensor Weight(Backend& b, const std::vector<float>& v, Shape shape) {
  auto t = b.CreateWeight(v, shape);
  if (!t.ok()) Die(t.status(), "CreateWeight");
  return *t;
}
Tensor Out(Backend& b, Shape shape, DType dtype) {
  auto t = b.Allocate(dtype, shape);
  if (!t.ok()) Die(t.status(), "Allocate");
  std::vector<uint8_t> poison(t->bytes(), 0xff);  // NaN in f32 and bf16
  if (!poison.empty()) PARITY_CHECK_OK(b.CopyFromHost(poison, *t));
  return *t;
}
std::vector<float> Down(Backend& b, const Tensor& t) {
  std::vector<float> v(t.numel());
  PARITY_CHECK_OK(b.CopyToHostF32(t, absl::MakeSpan(v)));
  return v;
}

void Report(Harness& h, const std::string& name, const std::vector<float>& out, const std::vector<float>& ref,
            double bound, const std::string& extra) {
  double num = 0, den = 0;
  bool nan = out.size() != ref.size();
  for (size_t i = 0; i < out.size() && i < ref.size(); ++i) {
    if (!std::isfinite(out[i])) nan = true;
    num += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  const double err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  const bool ok = !nan && err <= bound;
  std::printf("%s  %-60s err=%.3e (bound %.0e)%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), err, bound,
              nan ? " NaN/size" : "", extra.c_str());
  (ok ? h.passed : h.failed)++;
}

Layout MakeLayout(Harness& h, const std::vector<std::pair<int, int>>& seqs, int bs) {
  Layout l;
  l.qsl.push_back(0);
  for (auto [ctx, q] : seqs) {
    l.seq_lens.push_back(ctx);
    l.qsl.push_back(l.qsl.back() + q);
    l.max_q = std::max(l.max_q, q);
    l.max_len = std::max(l.max_len, ctx);
    l.max_blocks = std::max(l.max_blocks, (ctx + bs - 1) / bs);
  }
  l.tokens = l.qsl.back();
  l.num_blocks = 0;
  for (auto [ctx, q] : seqs) l.num_blocks += (ctx + bs - 1) / bs;
  l.num_blocks += 3;  // unused blocks
  std::vector<int32_t> perm(l.num_blocks);
  for (int i = 0; i < l.num_blocks; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), h.rng);
  l.block_tables.assign(seqs.size() * l.max_blocks, -1);
  int next = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int nb = (seqs[s].first + bs - 1) / bs;
    for (int b = 0; b < nb; ++b) l.block_tables[s * l.max_blocks + b] = perm[next++];
    for (int i = 0; i < seqs[s].second; ++i) {
      const int pos = seqs[s].first - seqs[s].second + i;
      l.slots.push_back(l.block_tables[s * l.max_blocks + pos / bs] * bs + pos % bs);
    }
  }
  return l;
}

AttentionMetadata Meta(Backend& b, const Layout& l, int bs) {
  AttentionMetadata m;
  const int S = static_cast<int>(l.seq_lens.size());
  m.num_seqs = S;
  m.num_tokens = l.tokens;
  m.max_query_len = l.max_q;
  m.max_seq_len = l.max_len;
  m.block_size = bs;
  m.query_start_loc = I32(b, l.qsl, {S + 1});
  m.seq_lens = I32(b, l.seq_lens, {S});
  m.block_tables = I32(b, l.block_tables, {S, l.max_blocks});
  m.slot_mapping = I32(b, l.slots, {l.tokens});
  return m;
}

std::vector<std::pair<std::string, std::vector<std::pair<int, int>>>> AttentionBatches(Harness& h) {
  std::vector<std::pair<std::string, std::vector<std::pair<int, int>>>> batches = {
      {"decode ctx=1", {{1, 1}}},
      {"decode ctx=15,16,17", {{15, 1}, {16, 1}, {17, 1}}},
      {"decode ctx=31,32,33,1000", {{31, 1}, {32, 1}, {33, 1}, {1000, 1}}},
      {"prefill 17 + chunk 16@48", {{17, 17}, {64, 16}}},
      {"mixed prefill 33 + 3 decodes", {{33, 33}, {5, 1}, {129, 1}, {16, 1}}},
  };
  std::vector<std::pair<int, int>> big;
  for (int i = 0; i < 256; ++i) big.push_back({1 + static_cast<int>(h.rng() % 600), 1});
  batches.push_back({"decode batch=256 ctx<=600", big});
  return batches;
}

}  // namespace moeserve::parity
