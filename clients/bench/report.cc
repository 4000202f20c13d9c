#include "clients/bench/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace moeserve::bench {
namespace {

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

nlohmann::json DistJson(const Distribution& d) {
  return {{"count", d.count}, {"mean", d.mean}, {"std", d.stddev}, {"min", d.min}, {"median", d.median},
          {"p90", d.p90},     {"p95", d.p95},   {"p99", d.p99},    {"max", d.max}};
}

}  // namespace

std::string RateName(double rate) {
  if (std::isinf(rate)) return "inf";
  std::ostringstream s;
  s << rate;
  return s.str();
}

void PrintSummary(std::ostream& out, const std::string& title, const Summary& s, const Slo& slo) {
  auto line = [&](const std::string& name, const std::string& value) {
    std::string padded = name;
    if (padded.size() < 38) padded.append(38 - padded.size(), ' ');
    out << padded << value << "\n";
  };
  std::string rule(60, '=');
  out << rule << "\n" << title << "\n" << rule << "\n";
  line("Requests sent:", std::to_string(s.sent));
  line("Successful requests:", std::to_string(s.completed));
  line("Failed requests:", std::to_string(s.failed));
  for (const auto& [code, count] : s.errors) line("  " + code + ":", std::to_string(count));
  line("Benchmark duration (s):", Fmt("%.2f", s.duration_s));
  line("Max requests in flight:", std::to_string(s.max_in_flight));
  line("Max send lag (ms):", Fmt("%.2f", s.max_send_lag_s * 1e3));
  line("Total input tokens:", std::to_string(s.input_tokens));
  line("Total generated tokens:", std::to_string(s.output_tokens));
  line("Total cached prompt tokens:", std::to_string(s.cached_tokens));
  line("Request throughput (req/s):", Fmt("%.2f", s.request_throughput));
  if (!slo.empty()) {
    std::string what;
    if (slo.ttft_ms) what += " ttft<=" + Fmt("%g", *slo.ttft_ms);
    if (slo.tpot_ms) what += " tpot<=" + Fmt("%g", *slo.tpot_ms);
    if (slo.e2el_ms) what += " e2el<=" + Fmt("%g", *slo.e2el_ms);
    line("Requests meeting SLOs (ms):", std::to_string(s.good) + " (" + what.substr(1) + ")");
    line("Request goodput (req/s):", Fmt("%.2f", s.goodput));
  }
  line("Output token throughput (tok/s):", Fmt("%.2f", s.output_throughput));
  line("Total token throughput (tok/s):", Fmt("%.2f", s.total_token_throughput));
  out << std::string(60, '-') << "\n";
  char header[160];
  std::snprintf(header, sizeof(header), "%-10s %9s %9s %9s %9s %9s %9s\n", "(ms)", "mean", "median", "p90", "p95",
                "p99", "max");
  out << header;
  auto row = [&](const char* name, const Distribution& d) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%-10s %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, d.mean, d.median, d.p90, d.p95,
                  d.p99, d.max);
    out << buf;
  };
  row("TTFT", s.ttft_ms);
  row("TPOT", s.tpot_ms);
  row("ITL", s.itl_ms);
  row("E2E", s.e2el_ms);
  out << rule << "\n";
}

nlohmann::json SummaryJson(const Summary& s, const Slo& slo) {
  nlohmann::json j;
  j["sent"] = s.sent;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["errors"] = s.errors;
  j["duration_s"] = s.duration_s;
  j["max_in_flight"] = s.max_in_flight;
  j["max_send_lag_s"] = s.max_send_lag_s;
  j["input_tokens"] = s.input_tokens;
  j["output_tokens"] = s.output_tokens;
  j["cached_tokens"] = s.cached_tokens;
  j["request_throughput"] = s.request_throughput;
  j["input_throughput"] = s.input_throughput;
  j["output_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_token_throughput;
  nlohmann::json slo_json = nlohmann::json::object();
  if (slo.ttft_ms) slo_json["ttft_ms"] = *slo.ttft_ms;
  if (slo.tpot_ms) slo_json["tpot_ms"] = *slo.tpot_ms;
  if (slo.e2el_ms) slo_json["e2el_ms"] = *slo.e2el_ms;
  j["slo"] = slo_json;
  j["good"] = s.good;
  j["goodput"] = s.goodput;
  j["ttft_ms"] = DistJson(s.ttft_ms);
  j["tpot_ms"] = DistJson(s.tpot_ms);
  j["itl_ms"] = DistJson(s.itl_ms);
  j["e2el_ms"] = DistJson(s.e2el_ms);
  return j;
}

nlohmann::json RecordsJson(const std::vector<RequestRecord>& records) {
  nlohmann::json out = nlohmann::json::array();
  for (const RequestRecord& r : records) {
    nlohmann::json j;
    j["index"] = r.index;
    j["scheduled_s"] = r.scheduled_s;
    j["sent_s"] = r.sent_s;
    j["status"] = r.status;
    if (!r.error.empty()) j["error"] = r.error;
    j["finish_reason"] = r.finish_reason;
    j["ttft_s"] = r.ttft_s;
    j["tpot_s"] = r.tpot_s();
    j["e2e_s"] = r.e2e_s;
    j["itls_s"] = r.itls_s;
    j["input_tokens"] = r.input_tokens;
    j["output_tokens"] = r.output_tokens;
    j["cached_tokens"] = r.cached_tokens;
    out.push_back(std::move(j));
  }
  return out;
}

std::string SweepCsv(const std::vector<SweepPoint>& points) {
  std::ostringstream out;
  out << "request_rate,completed,failed,duration_s,request_throughput,output_throughput,goodput,"
         "ttft_mean_ms,ttft_median_ms,ttft_p99_ms,tpot_mean_ms,tpot_median_ms,tpot_p99_ms,"
         "itl_median_ms,itl_p99_ms,e2el_median_ms,e2el_p99_ms\n";
  for (const SweepPoint& p : points) {
    const Summary& s = p.summary;
    out << RateName(p.rate) << "," << s.completed << "," << s.failed << "," << s.duration_s << ","
        << s.request_throughput << "," << s.output_throughput << "," << s.goodput << "," << s.ttft_ms.mean << ","
        << s.ttft_ms.median << "," << s.ttft_ms.p99 << "," << s.tpot_ms.mean << "," << s.tpot_ms.median << ","
        << s.tpot_ms.p99 << "," << s.itl_ms.median << "," << s.itl_ms.p99 << "," << s.e2el_ms.median << ","
        << s.e2el_ms.p99 << "\n";
  }
  return out.str();
}

namespace {

// A "nice" axis maximum (1, 2, 2.5, 5 x 10^k) at or above v.
double NiceMax(double v) {
  if (v <= 0) return 1;
  double base = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * base >= v) return m * base;
  }
  return 10 * base;
}

// One panel at (x0, y0), size w x h; series are (name, color, y-of-summary).
struct Series {
  const char* name;
  const char* color;
  double (*value)(const Summary&);
};

void Panel(std::ostringstream& svg, const std::vector<SweepPoint>& points, double x0, double y0, double w, double h,
           const std::string& ylabel, const std::vector<Series>& series) {
  double xmax = 0, ymax = 0;
  for (const SweepPoint& p : points) {
    xmax = std::max(xmax, p.summary.output_throughput);
    for (const Series& s : series) ymax = std::max(ymax, s.value(p.summary));
  }
  xmax = NiceMax(xmax);
  ymax = NiceMax(ymax);
  auto X = [&](double v) { return x0 + v / xmax * w; };
  auto Y = [&](double v) { return y0 + h - v / ymax * h; };
  svg << "<rect x=\"" << x0 << "\" y=\"" << y0 << "\" width=\"" << w << "\" height=\"" << h
      << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int i = 0; i <= 5; ++i) {
    double xv = xmax * i / 5, yv = ymax * i / 5;
    svg << "<line x1=\"" << X(xv) << "\" y1=\"" << y0 << "\" x2=\"" << X(xv) << "\" y2=\"" << y0 + h
        << "\" stroke=\"#ddd\"/>\n";
    svg << "<line x1=\"" << x0 << "\" y1=\"" << Y(yv) << "\" x2=\"" << x0 + w << "\" y2=\"" << Y(yv)
        << "\" stroke=\"#ddd\"/>\n";
    svg << "<text x=\"" << X(xv) << "\" y=\"" << y0 + h + 16 << "\" text-anchor=\"middle\">" << Fmt("%g", xv)
        << "</text>\n";
    svg << "<text x=\"" << x0 - 6 << "\" y=\"" << Y(yv) + 4 << "\" text-anchor=\"end\">" << Fmt("%g", yv)
        << "</text>\n";
  }
  svg << "<text x=\"" << x0 + w / 2 << "\" y=\"" << y0 + h + 36 << "\" text-anchor=\"middle\">output tokens/s</text>\n";
  svg << "<text transform=\"translate(" << x0 - 50 << "," << y0 + h / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
      << XmlEscape(ylabel) << "</text>\n";
  int legend = 0;
  for (const Series& s : series) {
    svg << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\" points=\"";
    for (const SweepPoint& p : points) {
      svg << X(p.summary.output_throughput) << "," << Y(s.value(p.summary)) << " ";
    }
    svg << "\"/>\n";
    for (const SweepPoint& p : points) {
      double cx = X(p.summary.output_throughput), cy = Y(s.value(p.summary));
      svg << "<circle cx=\"" << cx << "\" cy=\"" << cy << "\" r=\"3.5\" fill=\"" << s.color << "\"><title>rate "
          << RateName(p.rate) << ": " << Fmt("%.2f", s.value(p.summary)) << " ms</title></circle>\n";
      if (legend == 0) {
        svg << "<text x=\"" << cx + 5 << "\" y=\"" << cy - 6 << "\" font-size=\"10\" fill=\"#555\">" << RateName(p.rate)
            << "</text>\n";
      }
    }
    svg << "<rect x=\"" << x0 + 10 << "\" y=\"" << y0 + 10 + legend * 16 << "\" width=\"12\" height=\"4\" fill=\""
        << s.color << "\"/>\n";
    svg << "<text x=\"" << x0 + 28 << "\" y=\"" << y0 + 16 + legend * 16 << "\">" << s.name << "</text>\n";
    ++legend;
  }
}

}  // namespace

std::string SweepSvg(const std::vector<SweepPoint>& points, const std::string& title) {
  std::ostringstream svg;
  const double kWidth = 900, kHeight = 420;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"" << kWidth / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << XmlEscape(title)
      << " (point labels: request rate, req/s)</text>\n";
  Panel(svg, points, 80, 50, 330, 300, "TTFT (ms)",
        {{"TTFT median", "#1f77b4", [](const Summary& s) { return s.ttft_ms.median; }},
         {"TTFT p99", "#d62728", [](const Summary& s) { return s.ttft_ms.p99; }}});
  Panel(svg, points, 530, 50, 330, 300, "TPOT (ms)",
        {{"TPOT median", "#2ca02c", [](const Summary& s) { return s.tpot_ms.median; }},
         {"TPOT p99", "#ff7f0e", [](const Summary& s) { return s.tpot_ms.p99; }}});
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace moeserve::bench
