#include "server/model/decoder_tensors.h"

namespace moeserve {
namespace {

void Append(const MlpTensors& m, std::vector<WeightSpec>& out) {
  out.push_back(m.gate);
  out.push_back(m.up);
  out.push_back(m.down);
}

void Append(const std::optional<WeightSpec>& spec, std::vector<WeightSpec>& out) {
  if (spec) out.push_back(*spec);
}

void Append(const GqaTensors& a, std::vector<WeightSpec>& out) {
  out.push_back(a.q);
  out.push_back(a.k);
  out.push_back(a.v);
  Append(a.q_bias, out);
  Append(a.k_bias, out);
  Append(a.v_bias, out);
  Append(a.o_bias, out);
  Append(a.q_norm, out);
  Append(a.k_norm, out);
  out.push_back(a.o);
}

void Append(const MlaTensors& a, std::vector<WeightSpec>& out) {
  Append(a.q_a, out);
  Append(a.q_a_norm, out);
  out.push_back(a.q);
  out.push_back(a.kv_a);
  out.push_back(a.kv_a_norm);
  out.push_back(a.kv_b);
  out.push_back(a.o);
}

void Append(const MoeTensors& m, std::vector<WeightSpec>& out) {
  out.push_back(m.router);
  Append(m.correction_bias, out);
  for (const MlpTensors& e : m.experts) Append(e, out);
  if (m.shared) Append(*m.shared, out);
}

void Append(const LayerTensors& layer, std::vector<WeightSpec>& out) {
  out.push_back(layer.input_norm);
  std::visit([&](const auto& a) { Append(a, out); }, layer.attention);
  out.push_back(layer.post_attention_norm);
  std::visit([&](const auto& f) { Append(f, out); }, layer.ffn);
}

}  // namespace

std::vector<WeightSpec> AllWeights(const DecoderTensors& t) {
  std::vector<WeightSpec> out;
  out.push_back(t.embed);
  for (const LayerTensors& layer : t.layers) Append(layer, out);
  out.push_back(t.final_norm);
  Append(t.lm_head, out);
  if (t.mtp) {
    out.push_back(t.mtp->enorm);
    out.push_back(t.mtp->hnorm);
    out.push_back(t.mtp->eh_proj);
    Append(t.mtp->layer, out);
    out.push_back(t.mtp->head_norm);
    Append(t.mtp->head, out);
  }
  return out;
}

}  // namespace moeserve
