"""A model that writes a script: after any prompt, greedy decoding yields exactly the given text
pieces, then EOS. For tests of what the server does with particular output (reasoning blocks,
tool calls) without a model trained to write it.

Each piece becomes an added token of the tokenizer (so it decodes to exactly its text), and the
weights make the next token depend only on the current one: a one-layer Llama whose attention
and MLP add nothing (their output projections are zero), so the hidden state is the token's
embedding. Every token outside the script shares one embedding direction, mapped by lm_head to
the first piece; piece i has a direction of its own, mapped to piece i + 1, and the last to EOS.
"""

import json
import os
import shutil
import struct

_BF16 = {0.0: b"\x00\x00", 1.0: b"\x80\x3f", 20.0: b"\xa0\x41"}


def _row(d, hot, value):
    """A bf16 row of length d: `value` at index `hot`, zeros elsewhere."""
    return _BF16[0.0] * hot + _BF16[value] + _BF16[0.0] * (d - hot - 1)


def _write_safetensors(path, tensors):
    """tensors: [(name, shape, bf16 bytes)]."""
    header, offset = {}, 0
    for name, shape, data in tensors:
        assert len(data) == 2 * _numel(shape), name
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, _, data in tensors:
            f.write(data)


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def make_script_model(out_dir, tokenizer_dir, chat_template, pieces, eos_token):
    """Writes the model to out_dir: tokenizer files from tokenizer_dir (plus one added token per
    piece), `chat_template`, and weights that write `pieces` then `eos_token`. Returns out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(tokenizer_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
    ids.update(tok["model"]["vocab"])
    eos = ids[eos_token]
    first = 1 + max(max(tok["model"]["vocab"].values()), max(a["id"] for a in tok["added_tokens"]))
    piece_ids = []
    for i, text in enumerate(pieces):
        assert text not in ids, f"piece {text!r} is already a token"
        tok["added_tokens"].append({"id": first + i, "content": text, "single_word": False,
                                    "lstrip": False, "rstrip": False, "normalized": False,
                                    "special": False})
        piece_ids.append(first + i)
    vocab = first + len(pieces)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    config_path = os.path.join(tokenizer_dir, "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as f:
        tok_config = json.load(f)
    tok_config["chat_template"] = chat_template
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_config, f, ensure_ascii=False)

    # Direction 0: every token outside the script; direction 1 + i: piece i.
    d = max(8, (len(pieces) + 1 + 3) // 4 * 4)
    heads, kv_heads = 2, 1
    head_dim = d // heads
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d,
              "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": heads,
              "num_key_value_heads": kv_heads, "head_dim": head_dim, "vocab_size": vocab,
              "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16",
              "eos_token_id": eos}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f)

    other = _row(d, 0, 1.0)
    direction = {pid: 1 + i for i, pid in enumerate(piece_ids)}
    embed = b"".join(_row(d, direction[t], 1.0) if t in direction else other for t in range(vocab))
    head = bytearray(2 * vocab * d)

    def point(token, dim):  # lm_head row `token` reads direction `dim`
        head[2 * token * d:2 * (token + 1) * d] = _row(d, dim, 20.0)

    point(piece_ids[0], 0)
    for i in range(1, len(piece_ids)):
        point(piece_ids[i], i)
    point(eos, len(piece_ids))
    zeros = lambda *shape: _BF16[0.0] * _numel(shape)
    ones = lambda n: _BF16[1.0] * n
    layer = "model.layers.0."
    _write_safetensors(os.path.join(out_dir, "model.safetensors"), [
        ("model.embed_tokens.weight", [vocab, d], embed),
        (layer + "input_layernorm.weight", [d], ones(d)),
        (layer + "self_attn.q_proj.weight", [heads * head_dim, d], zeros(heads * head_dim, d)),
        (layer + "self_attn.k_proj.weight", [kv_heads * head_dim, d], zeros(kv_heads * head_dim, d)),
        (layer + "self_attn.v_proj.weight", [kv_heads * head_dim, d], zeros(kv_heads * head_dim, d)),
        (layer + "self_attn.o_proj.weight", [d, heads * head_dim], zeros(d, heads * head_dim)),
        (layer + "post_attention_layernorm.weight", [d], ones(d)),
        (layer + "mlp.gate_proj.weight", [4, d], zeros(4, d)),
        (layer + "mlp.up_proj.weight", [4, d], zeros(4, d)),
        (layer + "mlp.down_proj.weight", [d, 4], zeros(d, 4)),
        ("model.norm.weight", [d], ones(d)),
        ("lm_head.weight", [vocab, d], bytes(head)),
    ])
    return out_dir
