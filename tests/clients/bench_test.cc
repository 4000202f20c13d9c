// moeserve-bench units: arrival process, SLO parsing and goodput, percentiles, summaries,
// datasets and the sweep outputs.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "clients/bench/arrivals.h"
#include "clients/bench/dataset.h"
#include "clients/bench/metrics.h"
#include "clients/bench/report.h"
#include "gtest/gtest.h"

namespace moeserve::bench {
namespace {

void Moments(ArrivalGenerator* g, int n, double* mean, double* var) {
  std::vector<double> v(n);
  double sum = 0;
  for (double& x : v) sum += (x = g->NextGap());
  *mean = sum / n;
  double sq = 0;
  for (double x : v) sq += (x - *mean) * (x - *mean);
  *var = sq / (n - 1);
}

TEST(ArrivalsTest, PoissonGapsHaveMeanAndVarianceOfExponential) {
  ArrivalGenerator g(/*rate=*/10, /*burstiness=*/1, /*seed=*/7);
  double mean, var;
  Moments(&g, 40000, &mean, &var);
  EXPECT_NEAR(mean, 0.1, 0.1 * 0.02);
  EXPECT_NEAR(var, 0.01, 0.01 * 0.05);  // exponential: variance = mean^2
}

TEST(ArrivalsTest, BurstinessScalesVarianceKeepsMean) {
  for (double k : {0.25, 4.0}) {
    ArrivalGenerator g(/*rate=*/4, k, /*seed=*/11);
    double mean, var;
    Moments(&g, 40000, &mean, &var);
    EXPECT_NEAR(mean, 0.25, 0.25 * 0.03) << k;
    double want = 1.0 / (k * 16);
    EXPECT_NEAR(var, want, want * 0.08) << k;
  }
}

TEST(ArrivalsTest, SeededAndInfinite) {
  ArrivalGenerator a(3, 1, 42), b(3, 1, 42), c(3, 1, 43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    double x = a.NextGap();
    EXPECT_EQ(x, b.NextGap());
    differs |= x != c.NextGap();
  }
  EXPECT_TRUE(differs);
  ArrivalGenerator inf(std::numeric_limits<double>::infinity(), 1, 1);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(inf.NextGap(), 0.0);
}

TEST(SloTest, Parses) {
  absl::StatusOr<Slo> slo = ParseSlo({"ttft:500", "tpot:50,e2el:10000"});
  ASSERT_TRUE(slo.ok()) << slo.status();
  EXPECT_EQ(*slo->ttft_ms, 500);
  EXPECT_EQ(*slo->tpot_ms, 50);
  EXPECT_EQ(*slo->e2el_ms, 10000);
  EXPECT_TRUE(ParseSlo({}).value().empty());
  EXPECT_TRUE(ParseSlo({"ttft:1 tpot:2"}).ok());
  EXPECT_FALSE(ParseSlo({"ttft"}).ok());
  EXPECT_FALSE(ParseSlo({"ttft:abc"}).ok());
  EXPECT_FALSE(ParseSlo({"itl:5"}).ok());
  EXPECT_FALSE(ParseSlo({"ttft:-1"}).ok());
}

RequestRecord Rec(double ttft_ms, double e2e_ms, int tokens, const std::string& status = "OK") {
  RequestRecord r;
  r.ttft_s = ttft_ms / 1e3;
  r.e2e_s = e2e_ms / 1e3;
  r.output_tokens = tokens;
  r.input_tokens = 10;
  r.status = status;
  return r;
}

TEST(GoodputTest, CountsExactlyTheRequestsMeetingEverySlo) {
  std::vector<RequestRecord> records = {
      Rec(100, 1000, 10),               // tpot 100
      Rec(200, 1100, 10),               // ttft too slow for ttft:150
      Rec(150, 1050, 10),               // ttft == bound: meets; tpot 100
      Rec(50, 2050, 21),                // tpot 100, e2e 2050 > 2000
      Rec(10, 10, 1),                   // one token: tpot 0
      Rec(10, 500, 10, "UNAVAILABLE"),  // failed: never good
      Rec(120, 1300, 10),               // tpot 131.1 > 120
  };
  Slo slo = ParseSlo({"ttft:150 tpot:120 e2el:2000"}).value();
  std::vector<bool> want = {true, false, true, false, true, false, false};
  for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(MeetsSlo(records[i], slo), want[i]) << i;
  Summary s = Summarize(records, /*duration_s=*/2.0, slo);
  EXPECT_EQ(s.good, 3);
  EXPECT_DOUBLE_EQ(s.goodput, 1.5);
  // Without SLOs every completed request is good.
  EXPECT_EQ(Summarize(records, 2.0, Slo{}).good, 6);
}

TEST(MetricsTest, PercentilesInterpolateLikeNumpy) {
  std::vector<double> v = {4, 1, 3, 2, 5};
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 3);
  EXPECT_DOUBLE_EQ(Percentile(v, 90), 4.6);
  EXPECT_DOUBLE_EQ(Percentile(v, 99), 4.96);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
  Distribution d = Distribute(v);
  EXPECT_DOUBLE_EQ(d.mean, 3);
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.max, 5);
}

TEST(MetricsTest, SummaryCountsFailuresByCodeAndTokensOfCompletedOnly) {
  std::vector<RequestRecord> records = {Rec(10, 100, 5), Rec(10, 100, 5, "CANCELLED"),
                                        Rec(0, 100, 0, "DEADLINE_EXCEEDED"), Rec(0, 1, 0, "CANCELLED")};
  records[0].itls_s = {0.02, 0.03};
  records[0].sent_s = 0.5;
  records[0].scheduled_s = 0.4;
  Summary s = Summarize(records, 1.0, Slo{});
  EXPECT_EQ(s.sent, 4);
  EXPECT_EQ(s.completed, 1);
  EXPECT_EQ(s.failed, 3);
  EXPECT_EQ(s.errors.at("CANCELLED"), 2);
  EXPECT_EQ(s.errors.at("DEADLINE_EXCEEDED"), 1);
  EXPECT_EQ(s.output_tokens, 5);
  EXPECT_EQ(s.input_tokens, 10);
  EXPECT_EQ(s.itl_ms.count, 2);
  EXPECT_NEAR(s.itl_ms.mean, 25, 1e-9);
  EXPECT_NEAR(s.tpot_ms.mean, 22.5, 1e-9);
  EXPECT_NEAR(s.max_send_lag_s, 0.1, 1e-12);
}

TEST(DatasetTest, RandomHasExactLengthsAndIdsInVocab) {
  DatasetOptions o{.spec = "random",
                   .num_prompts = 50,
                   .input_len = 100,
                   .output_len = 20,
                   .range_ratio = 0.5,
                   .vocab_size = 300,
                   .seed = 3};
  std::vector<BenchPrompt> p = LoadDataset(o).value();
  ASSERT_EQ(p.size(), 50u);
  std::set<size_t> lengths;
  for (const BenchPrompt& x : p) {
    EXPECT_TRUE(x.text.empty());
    EXPECT_EQ(x.input_tokens, static_cast<int>(x.token_ids.size()));
    EXPECT_GE(x.token_ids.size(), 50u);
    EXPECT_LE(x.token_ids.size(), 150u);
    EXPECT_GE(x.output_tokens, 10);
    EXPECT_LE(x.output_tokens, 30);
    for (int32_t id : x.token_ids) EXPECT_TRUE(id >= 0 && id < 300);
    lengths.insert(x.token_ids.size());
  }
  EXPECT_GT(lengths.size(), 5u);
  o.range_ratio = 0;
  // Held by name: a range-for over LoadDataset(o).value() would iterate a dead temporary's vector.
  const std::vector<BenchPrompt> exact = LoadDataset(o).value();
  for (const BenchPrompt& x : exact) {
    EXPECT_EQ(x.token_ids.size(), 100u);
    EXPECT_EQ(x.output_tokens, 20);
  }
  EXPECT_EQ(LoadDataset(o).value()[7].token_ids, LoadDataset(o).value()[7].token_ids);
  o.vocab_size = 0;
  EXPECT_FALSE(LoadDataset(o).ok());
}

TEST(DatasetTest, PrefixRepetitionSharesPrefixes) {
  DatasetOptions o{.spec = "prefix-repetition",
                   .num_prompts = 8,
                   .input_len = 16,
                   .output_len = 4,
                   .prefix_len = 64,
                   .num_prefixes = 2,
                   .vocab_size = 512};
  std::vector<BenchPrompt> p = LoadDataset(o).value();
  ASSERT_EQ(p.size(), 8u);
  for (size_t i = 0; i < p.size(); ++i) {
    ASSERT_EQ(p[i].token_ids.size(), 80u);
    std::vector<int32_t> prefix(p[i].token_ids.begin(), p[i].token_ids.begin() + 64);
    std::vector<int32_t> other(p[i % 2].token_ids.begin(), p[i % 2].token_ids.begin() + 64);
    EXPECT_EQ(prefix, other);
  }
  EXPECT_NE(std::vector<int32_t>(p[0].token_ids.begin(), p[0].token_ids.begin() + 64),
            std::vector<int32_t>(p[1].token_ids.begin(), p[1].token_ids.begin() + 64));
}

TEST(DatasetTest, ShareGptFile) {
  std::string path = std::string(MOESERVE_SOURCE_DIR) + "/../shared/data/prompts/sharegpt_v3_filtered_500.json";
  if (!std::ifstream(path)) GTEST_SKIP() << "no " << path;
  DatasetOptions o{.spec = "sharegpt:" + path, .num_prompts = 600, .output_len = 64};
  std::vector<BenchPrompt> p = LoadDataset(o).value();
  ASSERT_EQ(p.size(), 600u);
  EXPECT_EQ(p[0].text, "How to stop automatic updates from the WSUS Server to a target machine");
  EXPECT_EQ(p[500].text, p[0].text);  // repeats past the file's 500
  EXPECT_EQ(p[3].output_tokens, 64);
  EXPECT_FALSE(LoadDataset({.spec = "sharegpt:/nonexistent.json"}).ok());
}

TEST(DatasetTest, JsonlLines) {
  std::string path = ::testing::TempDir() + "/bench_prompts.jsonl";
  {
    std::ofstream out(path);
    out << "{\"prompt\": \"first\"}\n\n\"second\"\n{\"turns\": [\"third\", \"x\"]}\nplain fourth\n";
  }
  std::vector<BenchPrompt> p = LoadDataset({.spec = "jsonl:" + path, .num_prompts = 4}).value();
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].text, "first");
  EXPECT_EQ(p[1].text, "second");
  EXPECT_EQ(p[2].text, "third");
  EXPECT_EQ(p[3].text, "plain fourth");
  EXPECT_FALSE(LoadDataset({.spec = "csv:" + path}).ok());
  std::remove(path.c_str());
}

TEST(ReportTest, SweepCsvAndSvg) {
  std::vector<SweepPoint> points;
  for (double rate : {1.0, 4.0, std::numeric_limits<double>::infinity()}) {
    SweepPoint p{rate, {}};
    p.summary.output_throughput = rate > 100 ? 900 : rate * 100;
    p.summary.ttft_ms.median = 10 * (rate > 100 ? 10 : rate);
    p.summary.ttft_ms.p99 = 2 * p.summary.ttft_ms.median;
    points.push_back(p);
  }
  std::string csv = SweepCsv(points);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_NE(csv.find("\ninf,"), std::string::npos);
  std::string svg = SweepSvg(points, "a <title>");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 20, true);
  EXPECT_NE(svg.find("a &lt;title&gt;"), std::string::npos);
  EXPECT_EQ(std::string::npos, svg.find("nan"));
}

}  // namespace
}  // namespace moeserve::bench
