"""Writes tests/fixtures/tokenizer/<name>.jsonl: reference encodings/decodings from Hugging Face
`tokenizers` for the strings of test_strings.py, plus random id sequences for decoding.

usage: make_fixtures.py SHARED_DATA_DIR STORIES_CONVERTED_DIR OUT_DIR
  STORIES_CONVERTED_DIR: output of `moeserve_convert_llama2c_vocab tok512.bin DIR`.

The first line is a header {"tokenizer", "tokenizers_version", "prefix", "suffix"}: the ids that
encoding with special tokens puts around a sequence. Each further line is one case:
  {"text": s, "ids": [...]}  encode(s, add_special_tokens=False)
  plus "special": ids with BOS/EOS as tokenizer_config.json says (add_bos_token/add_eos_token, as
  transformers' LlamaTokenizerFast; else the post-processor), "decode" / "decode_skip": decoding of
  "special" with skip_special_tokens False / True.
  {"ids": [...], "decode": ..., "decode_skip": ...}  for random id sequences.
"""

import json
import os
import random
import sys

import tokenizers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_strings import make_strings  # noqa: E402


def dumps(case):
    return json.dumps(case, ensure_ascii=False, separators=(",", ":"))


def config_token(config, key):
    v = config.get(key)
    if isinstance(v, dict):
        return v.get("content")
    return v


def write(name, directory, out_dir, strings, rng):
    tok = tokenizers.Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    config = json.load(open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8"))
    prefix, suffix = [], []
    if "add_bos_token" in config or "add_eos_token" in config:
        if config.get("add_bos_token"):
            prefix = [tok.token_to_id(config_token(config, "bos_token"))]
        if config.get("add_eos_token"):
            suffix = [tok.token_to_id(config_token(config, "eos_token"))]
    path = os.path.join(out_dir, f"{name}.jsonl")
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    if not prefix and not suffix:
        probe = tok.encode("x", add_special_tokens=True).ids
        plain = tok.encode("x", add_special_tokens=False).ids
        start = probe.index(plain[0]) if plain else len(probe)
        prefix, suffix = probe[:start], probe[start + len(plain):]
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps({"tokenizer": name, "tokenizers_version": tokenizers.__version__,
                       "prefix": prefix, "suffix": suffix}) + "\n")
        for s in strings:
            ids = tok.encode(s, add_special_tokens=False).ids
            if prefix or suffix:
                special = prefix + ids + suffix
            else:
                special = tok.encode(s, add_special_tokens=True).ids
            case = {"text": s, "ids": ids}
            if special != prefix + ids + suffix:
                case["special"] = special
            decode = tok.decode(ids, skip_special_tokens=False)
            skip = tok.decode(ids, skip_special_tokens=True)
            if decode != s:
                case["decode"] = decode
            if skip != decode:
                case["decode_skip"] = skip
            f.write(dumps(case) + "\n")
        for _ in range(300):
            ids = [rng.randrange(vocab_size) for _ in range(rng.randint(1, 12))]
            case = {"ids": ids, "decode": tok.decode(ids, skip_special_tokens=False),
                    "decode_skip": tok.decode(ids, skip_special_tokens=True)}
            f.write(dumps(case) + "\n")
    print(f"{path}: {len(strings)} strings, {os.path.getsize(path)} bytes")


def main():
    data, stories, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    strings = make_strings(random.Random(1))
    write("deepseek_v3", os.path.join(data, "tokenizers/deepseek_v3"), out, strings, random.Random(2))
    write("qwen3", os.path.join(data, "tokenizers/qwen3"), out, strings, random.Random(3))
    write("stories260k", stories, out, strings, random.Random(4))


if __name__ == "__main__":
    main()
