"""Checks that a converted llama2.c vocabulary (tokenizer.json from moeserve_convert_llama2c_vocab)
makes Hugging Face `tokenizers` encode exactly as llama2.c does, and decode the reference story.

usage: verify_llama2c_vocab.py TOK_BIN CONVERTED_DIR
"""

import os
import random
import sys

import tokenizers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama2c_tokenizer import Llama2cTokenizer  # noqa: E402
from test_strings import make_strings  # noqa: E402

STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
         "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.")


def main():
    ref = Llama2cTokenizer(sys.argv[1])
    with open(os.path.join(sys.argv[2], "tokenizer.json"), encoding="utf-8") as f:
        hf = tokenizers.Tokenizer.from_str(f.read())
    # Excluded by design: NUL (C strings), "▁" (HF reads it as a space, llama2.c as 3 bytes) and
    # the text of special tokens (HF matches it as the token, llama2.c spells it out).
    strings = [s for s in make_strings(random.Random(1))
               if not any(x in s for x in ("\0", "\u2581", "<s>", "</s>", "<unk>"))]
    mismatches = 0
    for s in strings:
        want = ref.encode(s, bos=True)
        got = hf.encode(s, add_special_tokens=True).ids
        if want != got:
            mismatches += 1
            if mismatches <= 10:
                print("MISMATCH", repr(s)[:200], want[:20], got[:20])
    print(f"encode: {len(strings) - mismatches}/{len(strings)} strings match llama2.c")

    ids = ref.encode(STORY, bos=True)
    text = hf.decode(ids, skip_special_tokens=True)
    ok_story = text == STORY
    print("story round trip:", "ok" if ok_story else f"FAILED: {text!r}")
    ref_text = b"".join(ref.decode_piece(p, t) for p, t in zip(ids, ids[1:])).decode()
    print("llama2.c decode agrees:", ref_text == STORY)
    sys.exit(0 if mismatches == 0 and ok_story else 1)


if __name__ == "__main__":
    main()
