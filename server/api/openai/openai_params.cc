#include "server/api/openai/openai_params.h"

#include <cmath>
#include <limits>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/api/openai/response_format.h"
#include "server/serving/errors.h"

namespace moeserve::api::openai {
namespace {

// Request bodies nest a few levels (messages, tools, JSON-schema parameters); deeper is refused
// before it costs anything.
constexpr int kMaxJsonDepth = 64;

const char* TypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    default: return "a number";
  }
}

absl::Status WrongType(const char* field, const char* want, const Json& got) {
  return serving::InvalidField(field, absl::StrCat(" must be ", want, ", got ", TypeName(got)));
}

const Json* Field(const Json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

absl::StatusOr<Json> ParseBody(const std::string& body) {
  int depth = 0;
  bool too_deep = false;
  Json parsed = Json::parse(
      body,
      [&](int d, Json::parse_event_t event, Json&) {
        depth = d;
        if (depth > kMaxJsonDepth) too_deep = true;
        return !too_deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep) {
    return absl::InvalidArgumentError(absl::StrCat("the request body nests deeper than ", kMaxJsonDepth, " levels"));
  }
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError("the request body is not valid JSON");
  }
  if (!parsed.is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  return parsed;
}

absl::StatusOr<std::optional<bool>> GetBool(const Json& body, const char* field) {
  const Json* v = Field(body, field);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean()) return WrongType(field, "a boolean", *v);
  return std::optional<bool>(v->get<bool>());
}

absl::StatusOr<std::optional<int64_t>> GetInt(const Json& body, const char* field, int64_t lo, int64_t hi) {
  const Json* v = Field(body, field);
  if (v == nullptr) return std::optional<int64_t>();
  int64_t value = 0;
  if (v->is_number_integer()) {
    value = v->get<int64_t>();
  } else if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    value = u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                           : static_cast<int64_t>(u);
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
             std::abs(v->get<double>()) < 9e18) {
    value = static_cast<int64_t>(v->get<double>());
  } else {
    return WrongType(field, "an integer", *v);
  }
  if (value < lo || value > hi) {
    return serving::InvalidField(field, absl::StrCat(" must be in [", lo, ", ", hi, "], got ", value));
  }
  return std::optional<int64_t>(value);
}

absl::StatusOr<std::optional<double>> GetNumber(const Json& body, const char* field) {
  const Json* v = Field(body, field);
  if (v == nullptr) return std::optional<double>();
  if (!v->is_number()) return WrongType(field, "a number", *v);
  return std::optional<double>(v->get<double>());
}

absl::StatusOr<std::optional<std::string>> GetString(const Json& body, const char* field) {
  const Json* v = Field(body, field);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return WrongType(field, "a string", *v);
  return std::optional<std::string>(v->get<std::string>());
}

absl::Status CheckSupported(const Json& body, const std::vector<const char*>& supported, const char* endpoint) {
  for (const auto& [key, value] : body.items()) {
    bool known = false;
    for (const char* name : supported) {
      if (key == name) {
        known = true;
        break;
      }
    }
    if (!known) {
      return serving::InvalidField(key,
                                   absl::StrCat(": this parameter is not supported by ", endpoint, " on this server"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckModel(const Json& body, const std::string& served_model) {
  absl::StatusOr<std::optional<std::string>> model = GetString(body, "model");
  if (!model.ok()) return model.status();
  if (model->has_value() && **model != served_model) {
    return serving::FieldError(
        absl::StatusCode::kNotFound, "model",
        absl::StrCat(": the model '", **model, "' does not exist; this server serves '", served_model, "'"));
  }
  return absl::OkStatus();
}

const std::vector<const char*>& CommonParamNames() {
  static const auto* names = new std::vector<const char*>{"model",
                                                          "temperature",
                                                          "top_p",
                                                          "top_k",
                                                          "min_p",
                                                          "n",
                                                          "seed",
                                                          "stop",
                                                          "stop_token_ids",
                                                          "presence_penalty",
                                                          "frequency_penalty",
                                                          "repetition_penalty",
                                                          "logit_bias",
                                                          "ignore_eos",
                                                          "min_tokens",
                                                          "priority",
                                                          "skip_special_tokens",
                                                          "user",
                                                          "stream",
                                                          "stream_options",
                                                          "cache_salt",
                                                          "response_format"};
  return *names;
}

absl::Status ReadCommonParams(const Json& body, serving::ServingRequest* request) {
  SamplingParams& p = request->sampling;
  // Floats: the validator checks the ranges (and names the fields).
  for (auto [field, out] :
       {std::pair{"temperature", &p.temperature}, std::pair{"top_p", &p.top_p}, std::pair{"min_p", &p.min_p},
        std::pair{"presence_penalty", &p.presence_penalty}, std::pair{"frequency_penalty", &p.frequency_penalty},
        std::pair{"repetition_penalty", &p.repetition_penalty}}) {
    absl::StatusOr<std::optional<double>> v = GetNumber(body, field);
    if (!v.ok()) return v.status();
    if (v->has_value()) *out = static_cast<float>(**v);
  }
  constexpr int64_t kI32 = std::numeric_limits<int32_t>::max();
  for (auto [field, out, lo] :
       {std::tuple{"top_k", &p.top_k, int64_t{-1}}, std::tuple{"n", &p.n, int64_t{1}},
        std::tuple{"min_tokens", &p.min_tokens, int64_t{0}}, std::tuple{"priority", &request->priority, -kI32}}) {
    absl::StatusOr<std::optional<int64_t>> v = GetInt(body, field, lo, kI32);
    if (!v.ok()) return v.status();
    if (v->has_value()) *out = static_cast<int32_t>(**v);
  }
  absl::StatusOr<std::optional<int64_t>> seed =
      GetInt(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  if (!seed.ok()) return seed.status();
  if (seed->has_value()) p.seed = static_cast<uint64_t>(**seed);

  if (const Json* stop = Field(body, "stop")) {
    if (stop->is_string()) {
      p.stop = {stop->get<std::string>()};
    } else if (stop->is_array()) {
      for (size_t i = 0; i < stop->size(); ++i) {
        if (!(*stop)[i].is_string()) {
          return serving::InvalidField(absl::StrCat("stop[", i, "]"), " must be a string");
        }
        p.stop.push_back((*stop)[i].get<std::string>());
      }
    } else {
      return WrongType("stop", "a string or an array of strings", *stop);
    }
  }
  if (const Json* ids = Field(body, "stop_token_ids")) {
    if (!ids->is_array()) return WrongType("stop_token_ids", "an array of token ids", *ids);
    for (size_t i = 0; i < ids->size(); ++i) {
      if (!(*ids)[i].is_number_integer()) {
        return serving::InvalidField(absl::StrCat("stop_token_ids[", i, "]"), " must be a token id");
      }
      p.stop_token_ids.push_back((*ids)[i].get<int32_t>());
    }
  }
  if (const Json* bias = Field(body, "logit_bias")) {
    if (!bias->is_object()) return WrongType("logit_bias", "an object of token id -> bias", *bias);
    for (const auto& [key, value] : bias->items()) {
      int32_t id = 0;
      if (!absl::SimpleAtoi(key, &id)) {
        return serving::InvalidField("logit_bias", absl::StrCat(": the key \"", key, "\" is not a token id"));
      }
      if (!value.is_number()) {
        return serving::InvalidField("logit_bias", absl::StrCat(": the bias of token ", key, " must be a number"));
      }
      p.logit_bias[id] = value.get<float>();
    }
  }
  absl::StatusOr<std::optional<bool>> ignore_eos = GetBool(body, "ignore_eos");
  if (!ignore_eos.ok()) return ignore_eos.status();
  if (ignore_eos->has_value()) p.ignore_eos = **ignore_eos;
  absl::StatusOr<std::optional<bool>> skip = GetBool(body, "skip_special_tokens");
  if (!skip.ok()) return skip.status();
  if (skip->has_value()) request->skip_special_tokens = **skip;
  absl::StatusOr<std::optional<std::string>> user = GetString(body, "user");  // accepted, unused
  if (!user.ok()) return user.status();
  absl::StatusOr<std::optional<std::string>> salt = GetString(body, "cache_salt");
  if (!salt.ok()) return salt.status();
  if (salt->has_value()) request->cache_salt = **salt;
  return ReadResponseFormat(body, request);
}

std::string RandomId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x%08x", rng(), static_cast<uint32_t>(rng()));
}

}  // namespace moeserve::api::openai
