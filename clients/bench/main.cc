// moeserve-bench: a load test of a moeserve server over streaming gRPC, or of any server with
// OpenAI's HTTP API (moeserve, vLLM, llama.cpp's server), measured the same way.
//
//   moeserve-bench --addr 127.0.0.1:50051 --dataset random --input-len 128 --output-len 128
//       --num-requests 200 --request-rate 8 --max-concurrency 64 --goodput ttft:500 tpot:50
//   moeserve-bench --dataset sharegpt:prompts.json --sweep-rates 1,2,4,8,inf --sweep-out sweep
//   moeserve-bench --backend openai-completions --base-url http://127.0.0.1:8000/v1
//       --dataset random --vocab-size 129280 --num-requests 200
//
// Prints a summary table on stdout and a progress bar on stderr; see docs/BENCH.md. Exit status 0
// when the run finished (failed requests are reported, not fatal); 1 when it could not run; 2 for
// usage errors.

#include <unistd.h>
#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "clients/bench/dataset.h"
#include "clients/bench/grpc_client.h"
#include "clients/bench/metrics.h"
#include "clients/bench/openai_client.h"
#include "clients/bench/report.h"
#include "clients/bench/runner.h"
#include "clients/common/channel.h"
#include "moeserve/v1/inference.grpc.pb.h"

namespace {

namespace bench = moeserve::bench;
namespace v1 = moeserve::v1;

std::atomic<bool> g_interrupt{false};
void OnSignal(int) { g_interrupt = true; }

int Fail(const std::string& message) {
  std::cerr << "moeserve-bench: " << message << "\n";
  return 1;
}

bool ParseRate(const std::string& text, double* rate) {
  if (text == "inf" || text == "Inf" || text == "INF") {
    *rate = std::numeric_limits<double>::infinity();
    return true;
  }
  char* end = nullptr;
  *rate = std::strtod(text.c_str(), &end);
  return !text.empty() && *end == '\0' && *rate > 0;
}

bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  moeserve::clients::ChannelOptions channel_options;
  bench::DatasetOptions data;
  bench::RunOptions run;
  std::string rate_text = "inf";
  std::string sweep_text;
  std::string sweep_out = "bench_sweep";
  std::string json_path;
  std::vector<std::string> goodput;
  int connections = 1;
  bool progress = isatty(STDERR_FILENO);
  bool cache_salt_set = false;
  std::string backend = "grpc";
  std::string base_url = "http://127.0.0.1:8000/v1";
  std::string model;

  CLI::App app{
      "moeserve-bench: load test of a moeserve server over streaming gRPC, or of an "
      "OpenAI-compatible HTTP server"};
  app.add_option("--backend", backend, "grpc | openai-completions | openai-chat")
      ->capture_default_str()
      ->check(CLI::IsMember({"grpc", "openai-completions", "openai-chat"}));
  app.add_option("--addr", channel_options.addr, "grpc: server address HOST:PORT")->capture_default_str();
  app.add_option("--base-url", base_url, "openai-*: the API root, http://HOST:PORT/v1")->capture_default_str();
  app.add_option("--model", model, "openai-*: the model to request (default: the first of GET /models)");
  moeserve::clients::AddChannelFlags(&app, &channel_options);
  app.add_option("--connections", connections, "grpc: channels (TCP connections) used in turn")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--dataset", data.spec, "random | sharegpt:FILE | jsonl:FILE | prefix-repetition")
      ->capture_default_str();
  app.add_option("--input-len", data.input_len,
                 "random: prompt tokens; prefix-repetition: tokens after the shared prefix")
      ->capture_default_str();
  app.add_option("--output-len", data.output_len, "output tokens per request (max_tokens)")->capture_default_str();
  app.add_option("--range-ratio", data.range_ratio,
                 "random/prefix-repetition: lengths uniform in [len*(1-r), len*(1+r)]")
      ->capture_default_str();
  app.add_option("--prefix-len", data.prefix_len, "prefix-repetition: shared prefix tokens")->capture_default_str();
  app.add_option("--num-prefixes", data.num_prefixes, "prefix-repetition: distinct prefixes")->capture_default_str();
  app.add_option("--vocab-size", data.vocab_size, "token ids are drawn below this (default: the server's vocab_size)");
  app.add_option("--request-rate", rate_text, "arrivals per second, or inf (all at once)")->capture_default_str();
  app.add_option("--burstiness", run.burstiness, "gamma shape of arrival gaps: 1 = Poisson")->capture_default_str();
  app.add_option("--max-concurrency", run.max_concurrency, "requests in flight at most (0 = no cap)")
      ->capture_default_str();
  app.add_option("--num-requests", run.num_requests, "requests to send (0 with --duration: no limit)")
      ->capture_default_str();
  app.add_option("--duration", run.duration_s, "seconds to keep sending (0 = until --num-requests)");
  app.add_option("--warmup", run.warmup, "requests sent and awaited first, not counted")->capture_default_str();
  app.add_option("--seed", run.seed, "seed of the arrival process and the dataset")->capture_default_str();
  app.add_option("--request-timeout", run.request_timeout_s, "deadline of each request in seconds (0 = none)");
  app.add_option("--drain-timeout", run.drain_timeout_s,
                 "cancel requests still open this many seconds after sending stops (0 = wait)");
  app.add_option("--temperature", run.temperature, "sampling temperature")->capture_default_str();
  app.add_flag("--ignore-eos,!--no-ignore-eos", run.ignore_eos, "generate exactly --output-len tokens (default on)");
  app.add_option("--cache-salt", run.cache_salt,
                 "prefix-cache salt of every request (default: none; a new one per sweep point)")
      ->each([&](const std::string&) { cache_salt_set = true; });
  app.add_option("--goodput", goodput, "SLOs, e.g. ttft:500 tpot:50 e2el:10000 (milliseconds)");
  app.add_option("--json", json_path, "write every figure and the per-request records here");
  app.add_option("--sweep-rates", sweep_text, "comma-separated request rates to run in turn, e.g. 1,2,4,inf");
  app.add_option("--sweep-out", sweep_out, "sweep outputs: PREFIX.csv and PREFIX.svg")->capture_default_str();
  app.add_flag("--progress,!--no-progress", progress, "progress bar on stderr (default: when a tty)");
  CLI11_PARSE(app, argc, argv);

  std::vector<double> rates;
  if (!sweep_text.empty()) {
    std::istringstream in(sweep_text);
    std::string part;
    while (std::getline(in, part, ',')) {
      double r;
      if (!ParseRate(part, &r)) return Fail("--sweep-rates: bad rate '" + part + "'"), 2;
      rates.push_back(r);
    }
    if (rates.empty()) return Fail("--sweep-rates: no rates"), 2;
  } else {
    double r;
    if (!ParseRate(rate_text, &r)) return Fail("--request-rate: expected a positive number or inf"), 2;
    rates.push_back(r);
  }
  if (run.num_requests <= 0 && run.duration_s <= 0) {
    return Fail("give --num-requests N or --duration S"), 2;
  }
  if (!(run.burstiness > 0)) return Fail("--burstiness must be > 0"), 2;
  absl::StatusOr<bench::Slo> slo = bench::ParseSlo(goodput);
  if (!slo.ok()) return Fail(std::string(slo.status().message())), 2;
  run.progress = progress;
  run.interrupt = &g_interrupt;

  std::string bearer, error;
  if (!moeserve::clients::ResolveApiKey(channel_options, &bearer, &error)) return Fail(error);
  const bool http = backend != "grpc";
  if (http && (channel_options.tls || !channel_options.tls_ca.empty())) {
    return Fail("--tls is for --backend grpc; the OpenAI backends speak plain http://"), 2;
  }
  if (http && backend == "openai-chat" && bench::DatasetNeedsVocab(data.spec)) {
    return Fail("--backend openai-chat sends text: use a text dataset (sharegpt:FILE, jsonl:FILE)"), 2;
  }
  if (http && bench::DatasetNeedsVocab(data.spec) && data.vocab_size <= 0) {
    return Fail("--dataset " + data.spec + " over HTTP needs --vocab-size (the model's vocabulary)"), 2;
  }

  // The client, and what the server runs (and its vocabulary, for token-id datasets).
  std::unique_ptr<bench::StreamClient> client;
  std::string server_label;
  v1::ModelInfo info;
  if (http) {
    bench::OpenAiOptions openai{backend == "openai-chat" ? bench::OpenAiApi::kChat : bench::OpenAiApi::kCompletions,
                                model, bearer};
    absl::StatusOr<std::unique_ptr<bench::OpenAiStreamClient>> openai_client =
        bench::OpenAiStreamClient::Create(base_url, openai);
    if (!openai_client.ok()) return Fail(std::string(openai_client.status().message()));
    if (model.empty()) {
      absl::StatusOr<std::string> first = (*openai_client)->FirstModelId();
      if (!first.ok()) return Fail(std::string(first.status().message()) + " (or give --model)");
      model = *first;
      (*openai_client)->set_model(model);
    }
    info.set_model_id(model);
    server_label = base_url;
    client = *std::move(openai_client);
  } else {
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    for (int i = 0; i < connections; ++i) {
      std::shared_ptr<grpc::Channel> channel = moeserve::clients::MakeChannel(channel_options, &error, i);
      if (channel == nullptr) return Fail(error);
      if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
        return Fail("cannot connect to " + channel_options.addr);
      }
      channels.push_back(std::move(channel));
    }
    grpc::ClientContext context;
    if (!bearer.empty()) context.AddMetadata("authorization", "Bearer " + bearer);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status status = v1::Inference::NewStub(channels[0])->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
    if (!status.ok() && bench::DatasetNeedsVocab(data.spec) && data.vocab_size <= 0) {
      return Fail(std::string("GetModelInfo: ") + moeserve::clients::CodeName(status.error_code()) + ": " +
                  status.error_message() + " (or give --vocab-size)");
    }
    server_label = channel_options.addr;
    client = std::make_unique<bench::GrpcStreamClient>(std::move(channels), bearer);
  }
  if (data.vocab_size <= 0) data.vocab_size = info.vocab_size();
  data.seed = run.seed;
  data.num_prompts = run.num_requests > 0 ? run.num_requests + run.warmup : 1000;
  absl::StatusOr<std::vector<bench::BenchPrompt>> prompts = bench::LoadDataset(data);
  if (!prompts.ok()) return Fail(std::string(prompts.status().message()));

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  bench::Runner runner(std::move(client));
  nlohmann::json doc;
  doc["config"] = {{"api", backend},
                   {"addr", server_label},
                   {"model_id", info.model_id()},
                   {"backend", info.backend()},
                   {"dataset", data.spec},
                   {"input_len", data.input_len},
                   {"output_len", data.output_len},
                   {"range_ratio", data.range_ratio},
                   {"burstiness", run.burstiness},
                   {"max_concurrency", run.max_concurrency},
                   {"num_requests", run.num_requests},
                   {"duration_s", run.duration_s},
                   {"warmup", run.warmup},
                   {"seed", run.seed},
                   {"connections", connections},
                   {"temperature", run.temperature},
                   {"ignore_eos", run.ignore_eos}};
  doc["runs"] = nlohmann::json::array();
  std::vector<bench::SweepPoint> points;
  std::string base_salt = run.cache_salt;
  for (size_t k = 0; k < rates.size() && !g_interrupt; ++k) {
    run.request_rate = rates[k];
    if (rates.size() > 1 && !cache_salt_set && !http) {
      // Each sweep point starts with a cold prefix cache. (Over HTTP only when asked for:
      // cache_salt is an extension other servers may reject.)
      run.cache_salt =
          "moeserve-bench-" + std::to_string(run.seed) + "-" + std::to_string(getpid()) + "-" + std::to_string(k);
    } else {
      run.cache_salt = base_salt;
    }
    bench::RunResult result = runner.Run(*prompts, run);
    bench::Summary summary = bench::Summarize(result.records, result.duration_s, *slo);
    std::string title = "moeserve-bench " + backend + ": " + data.spec + ", rate " + bench::RateName(run.request_rate) +
                        " req/s, burstiness " + bench::RateName(run.burstiness) + ", concurrency " +
                        (run.max_concurrency > 0 ? std::to_string(run.max_concurrency) : "unlimited");
    bench::PrintSummary(std::cout, title, summary, *slo);
    std::cout.flush();
    points.push_back({run.request_rate, summary});
    nlohmann::json r;
    r["request_rate"] = bench::RateName(run.request_rate);
    r["summary"] = bench::SummaryJson(summary, *slo);
    r["requests"] = bench::RecordsJson(result.records);
    doc["runs"].push_back(std::move(r));
  }
  if (!json_path.empty() && !WriteFile(json_path, doc.dump(1) + "\n")) {
    return Fail("cannot write " + json_path);
  }
  if (rates.size() > 1) {
    std::string title =
        "moeserve-bench " + data.spec + " on " + (info.model_id().empty() ? server_label : info.model_id());
    if (!WriteFile(sweep_out + ".csv", bench::SweepCsv(points)) ||
        !WriteFile(sweep_out + ".svg", bench::SweepSvg(points, title))) {
      return Fail("cannot write " + sweep_out + ".csv/.svg");
    }
    std::cerr << "moeserve-bench: wrote " << sweep_out << ".csv and " << sweep_out << ".svg\n";
  }
  return g_interrupt ? 130 : 0;
}
