#!/usr/bin/env python3
"""Collective bytes per decode step under tensor parallelism, on paper (issue 15; docs/PERF.md).

  bench/tp_comm_paper.py counted --config bench/configs/deepseek_v2_lite_4l.json --ranks 2 \
      --batch 1,32 --act-bytes 4 [--ep-dispatch alltoall] [--log DECODE_BENCH_OUTPUT]
      What moeserve's collectives move per decode step (rank 0's operand bytes, as
      TimedCommunicator counts them), by kind; with --log, next to the counted figures that
      `moeserve-decode-bench --tensor-parallel-size N` printed ("collectives batch=..." lines).
      --ep-dispatch alltoall: expert parallelism with the all-to-all dispatch, whose all-to-all
      bytes depend on the routing: on paper, their expectation under uniform routing.

  bench/tp_comm_paper.py v3 --config bench/configs/deepseek_v3.json --ranks 8 --batch 64,256
      DeepSeek-V3 (fp8) on 8 x H200: bytes each GPU sends per decode step and their time at NVLink
      speed, for moeserve's scheme (tensor-parallel attention and experts, or expert parallelism,
      joined by all-reduces) and for expert parallelism with all-to-all dispatch/combine of
      data-parallel attention (DeepSeek's and SGLang's deployment); and the step's weight-read
      time at HBM speed, for the share.

Model of a step (what decoder_model.cc and decoder_layer.cc call): one all-reduce of the
embedding [B, d], two all-reduces per layer (attention output, FFN output: [B, d] each) and one
all-gather of the logits (each rank sends [B, V / N]), all in the activation dtype (CPU fp32,
CUDA bf16). A ring all-reduce makes each GPU send 2 (N - 1) / N of the operand, an all-gather
(N - 1) / N of the result.
"""

import argparse
import json
import math
import re


def load(path):
    with open(path) as f:
        return json.load(f)


def moeserve_step(c, n, b, act):
    """{kind: (calls, operand bytes on rank 0)} per decode step, as TimedCommunicator counts."""
    d, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    ar_calls = 1 + 2 * layers
    return {"all_reduce": (ar_calls, ar_calls * b * d * act), "all_gather": (1, b * (vocab // n) * act)}


def moeserve_a2a_step(c, n, b, act):
    """The same with --expert-parallel --ep-dispatch alltoall (decoder_layer.cc ForwardOwnTokens,
    moe_dispatch.cc): per MoE layer a reduce-scatter of the attention output [P n, d] (P = the
    ceil(B / n) tokens each rank owns), five all-to-alls (counts: n i64; token rows [S, d]; their ids
    and weights [S, k] i32/f32; the partial outputs [R, d] back) and an all-gather of the owned
    residual rows [P, d]. S, the (token, rank) pairs sent, is P times the expected number of ranks
    among a token's k experts (uniform routing); R = S on average."""
    d, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    e, k = c["n_routed_experts"], c["num_experts_per_tok"]
    dense = min(c.get("first_k_dense_replace", 0), layers)
    moe = layers - dense
    p = math.ceil(b / n)
    ranks_per_token = n * (1 - math.comb(e - e // n, k) / math.comb(e, k))
    s = p * ranks_per_token
    a2a = 8 * n + s * d * act + s * k * 8 + s * d * act
    return {"all_reduce": (1 + 2 * dense, (1 + 2 * dense) * b * d * act),
            "reduce_scatter": (moe, moe * p * n * d * act),
            "all_to_all": (5 * moe, round(moe * a2a)),
            "all_gather": (1 + moe, b * (vocab // n) * act + moe * p * d * act)}


def counted(args):
    c = load(args.config)
    step = moeserve_a2a_step if args.ep_dispatch == "alltoall" else moeserve_step
    got = {}
    if args.log:
        for line in open(args.log):
            m = re.match(r"collectives batch=(\d+) per step:(.*)", line)
            if m:
                got[int(m.group(1))] = {k: (float(calls), float(by)) for k, calls, by in
                                        re.findall(r" (\w+) ([\d.]+) calls (\d+) B;", m.group(2))}
    print(f"| batch | kind | calls/step | bytes/step on paper | counted |")
    print("|---:|---|---:|---:|---:|")
    for b in args.batch:
        for kind, (calls, by) in step(c, args.ranks, b, args.act_bytes).items():
            cnt = got.get(b, {}).get(kind)
            cnt_s = f"{cnt[0]:.0f} calls, {cnt[1]:.0f} B" if cnt else "-"
            print(f"| {b} | {kind} | {calls} | {by} | {cnt_s} |")


def v3(args):
    c = load(args.config)
    n = args.ranks
    d, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    dense = c["first_k_dense_replace"]
    moe_layers = layers - dense
    e, k, i_moe = c["n_routed_experts"], c["num_experts_per_tok"], c["moe_intermediate_size"]
    groups, topk_groups = c.get("n_group", 1), c.get("topk_group", 1)
    act = 2  # bf16 activations on CUDA
    nvlink = args.nvlink_gbps * 1e9 / 2  # per direction
    hbm = args.hbm_gbps * 1e9
    lat = args.latency_us * 1e-6

    # Weight bytes read per rank per step (the roofline of a memory-bound decode step): every
    # non-expert weight of the rank (bf16), the touched experts' share (fp8 + block scales).
    h, q_lora, kv_lora = c["num_attention_heads"], c["q_lora_rank"], c["kv_lora_rank"]
    dn, dr, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    attn_split = (h * (dn + dr) * q_lora + h * (dn + dv) * kv_lora + d * h * dv) / n
    attn_whole = q_lora * d + (kv_lora + dr) * d
    dense_mlp = 3 * d * c["intermediate_size"] / n
    shared = 3 * d * i_moe * c["n_shared_experts"] / n
    other = 2 * (layers * (attn_split + attn_whole) + dense * dense_mlp + moe_layers * shared + vocab * d / n)
    expert = 3 * d * i_moe * (1 + 4 / (128 * 128))  # fp8 bytes of one expert, with scales
    print(f"DeepSeek-V3 on {n} GPUs: NVLink {args.nvlink_gbps:.0f} GB/s ({nvlink / 1e9:.0f} GB/s per direction), "
          f"HBM {args.hbm_gbps / 1000:.1f} TB/s, {args.latency_us:.0f} us per collective")
    print("| batch | scheme | collectives/step | bytes sent per GPU/step | comm ms | weights read per GPU | "
          "weights ms | comm share |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for b in args.batch:
        touched = e * (1 - (1 - k / e) ** b)  # distinct experts a layer's batch routes to
        weights = other + moe_layers * touched * expert / n
        w_ms = weights / hbm * 1e3
        # moeserve: all-reduces of [B, d] (+ the logits all-gather), TP or EP alike.
        ar = (1 + 2 * layers) * 2 * (n - 1) / n * b * d * act
        ag = (n - 1) / n * b * vocab * act
        calls = 2 + 2 * layers
        sent = ar + ag
        c_ms = (sent / nvlink + calls * lat) * 1e3
        print(f"| {b} | TP attention + all-reduce (moeserve) | {calls} | {sent / 1e6:.1f} MB | {c_ms:.2f} | "
              f"{weights / 1e9:.1f} GB | {w_ms:.2f} | {100 * c_ms / (c_ms + w_ms):.0f}% |")
        # Expert parallelism with all-to-all: attention data-parallel (B / N tokens per rank), each
        # token dispatched (bf16) to the remote ranks among at most topk_group expert groups (one
        # group per rank when E / N experts = E / n_group) and combined back; the dense layers'
        # MLP and the shared expert replicated; logits local.
        ranks_per_token = min(n, topk_groups if e // n == e // groups else k)
        remote = ranks_per_token * (n - 1) / n
        a2a = moe_layers * 2 * (b / n) * remote * d * act
        a2a_calls = 2 * moe_layers
        a2a_ms = (a2a / nvlink + a2a_calls * lat) * 1e3
        print(f"| {b} | DP attention + EP all-to-all | {a2a_calls} | {a2a / 1e6:.1f} MB | {a2a_ms:.2f} | "
              f"(other weights whole) | | {100 * a2a_ms / (a2a_ms + w_ms):.0f}% |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["counted", "v3"])
    p.add_argument("--config", required=True)
    p.add_argument("--ranks", type=int, required=True)
    p.add_argument("--batch", type=lambda s: [int(x) for x in s.split(",")], required=True)
    p.add_argument("--act-bytes", type=int, default=4)
    p.add_argument("--log")
    p.add_argument("--ep-dispatch", choices=["allreduce", "alltoall"], default="allreduce")
    p.add_argument("--nvlink-gbps", type=float, default=900.0)
    p.add_argument("--hbm-gbps", type=float, default=4800.0)
    p.add_argument("--latency-us", type=float, default=10.0)
    args = p.parse_args()
    counted(args) if args.mode == "counted" else v3(args)


if __name__ == "__main__":
    main()
