"""Deterministic, diverse test strings for tokenizer fixtures: many scripts, code, whitespace runs,
numbers, emoji with joiners, special-token text, long words and random code points."""

import random

SPECIAL_TEXTS = [
    "<s>", "</s>", "<unk>", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>",
    "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜tool▁calls▁begin｜>",
    "<｜tool▁sep｜>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_pad|>",
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|box_start|>",
]

PHRASES = [
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the park.",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll like it, won't you? They've said we'd go.",
    "HELLO World! it's ALL CAPS'S AND Mixed'Ll",
    "Tom and his mom went to the store. He wanted a big red ball!",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\treturn 0;\n}\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "{\"key\": [1, 2.5, -3e10, null, true], \"nested\": {\"a\": \"b\"}}",
    "https://example.com/path?query=1&x=%20y#frag",
    "user@example.org wrote: >>> import numpy as np",
    "$ ls -la /usr/local/bin | grep -E '^d' > out.txt 2>&1",
    "价格是 ¥1,234.56，折扣 15%。",
    "我们今天去公园玩，天气非常好！",
    "人工智能正在改变世界。深度学习模型需要大量数据。",
    "東京は日本の首都です。ひらがなとカタカナ、漢字を使います。",
    "カタカナのテキストとひらがなのテキスト",
    "안녕하세요, 만나서 반갑습니다. 한국어 텍스트입니다.",
    "Привет, мир! Как дела? Ёлка и щётка.",
    "Γειά σου Κόσμε! Ελληνικά κείμενα.",
    "مرحبا بالعالم! هذا نص عربي.",
    "שלום עולם! זהו טקסט בעברית.",
    "नमस्ते दुनिया! यह हिंदी पाठ है।",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง",
    "Xin chào thế giới! Tiếng Việt có dấu.",
    "Ça va? Très bien, merci. Où est la bibliothèque? Æsir, Øresund, ß.",
    "Tiếng Việt: Đây là một câu thử nghiệm.",
    "ქართული ენა · Հայերեն · አማርኛ · ᠮᠣᠩᠭᠣᠯ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 ∑∫∂√∞ ≤ ≥ ≠ ± × ÷",
    "ﬁﬂ ﬃ ① ② ㎏ ㍻ Ⅻ ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "e\u0301 a\u0308 n\u0303 \u1e9b\u0323 Å Å",
    "👋🏽 Hi! 👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 🇺🇸🇯🇵 flags, ❤️‍🔥 1️⃣ #️⃣",
    "🧑🏿‍💻 codes; 👩‍❤️‍💋‍👨 kiss; 🤷‍♀️ shrug 😀😃😄😁",
    "   leading spaces", "trailing spaces   ", "\ttab\tseparated\tvalues\n",
    "line1\nline2\r\nline3\rline4\n\n\nline7",
    "a  b   c    d     e", " \n \n ", "\u00a0non\u00a0breaking\u3000ideographic\u2009thin",
    "1234567890 12 345 6789 3.14159 -42 +7 1e-9 0x1F 1,000,000",
    "٠١٢٣٤٥٦٧٨٩ ۰۱۲ १२३ ๑๒๓ ①②",
    "Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "Donaudampfschifffahrtsgesellschaftskapitänsmütze",
    "!!!??? ... --- *** ((())) [[[]]] {{{}}} ''' \"\"\" ``` ~~~",
    "C'est l'été. Don't stop—it's “quoted” and ‘single’ «guillemets».",
    "𠀀𠀁𠀂 𪚥 𰻞 rare CJK extension characters",
    "it'ſ case folding: IT'S it'S 'K 'Ǆ ǅ ǆ İstanbul ΣΑΣ",
    "x\u2028y\u2029z\u180e\u00ad\ufeffw\u0600\u200e\u200f",
    "\x00\x01\x1f\x7f control \x1b[31mred\x1b[0m",
]

WORDS = ("the a to and of in is it you that he was for on are with as I his they be at one have "
         "this from or had by hot word but what some we can out other were all there when up use "
         "your how said an each she which do their time if will way about many then them write "
         "would like so these her long make thing see him two has look more day could go come did "
         "number sound no most people my over know water than call first who may down side been "
         "now find").split()

RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
          (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F),
          (0x2190, 0x23FF), (0x2500, 0x27BF), (0x3000, 0x30FF), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3),
          (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF),
          (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F),
          (0x300, 0x36F), (0x1F1E6, 0x1F1FF)]

WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0", "\u3000",
              "\u2028", "\u200b", "\u200d", "\x0b", "\x0c", "\u0085", "      "]


def random_codepoints(rng, n):
    out = []
    for _ in range(n):
        lo, hi = rng.choice(RANGES)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def random_number(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return str(rng.randint(0, 10 ** rng.randint(1, 25)))
    if kind == 1:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}"
    if kind == 2:
        return ",".join(str(rng.randint(0, 999)) for _ in range(rng.randint(1, 5)))
    if kind == 3:
        return hex(rng.getrandbits(rng.randint(4, 64)))
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40)))


def random_word(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(15, 60)))
    if kind == 1:
        return rng.choice(WORDS).upper()
    if kind == 2:
        return rng.choice(WORDS).capitalize() + rng.choice(["'s", "'ll", "'VE", "'d", "'re", "'M", "'T"])
    return rng.choice(WORDS)


def fragment(rng):
    kind = rng.randrange(10)
    if kind == 0:
        return rng.choice(SPECIAL_TEXTS)
    if kind == 1:
        return random_number(rng)
    if kind == 2:
        return random_codepoints(rng, rng.randint(1, 12))
    if kind == 3:
        return rng.choice(WHITESPACE)
    if kind in (4, 5):
        p = rng.choice(PHRASES)
        a = rng.randrange(len(p))
        return p[a:a + rng.randint(1, 40)]
    return random_word(rng)


def make_strings(rng, count=3200):
    strings = ["", " ", "a", "\n", "  ", "Hello", " Hello", "hello world", "<s>", "</s>"]
    strings += PHRASES
    strings += [s + " " + t for s in SPECIAL_TEXTS for t in ("hi", "")]
    strings += [" " + s + " " for s in SPECIAL_TEXTS]
    strings += ["x" + s + "y" for s in SPECIAL_TEXTS]
    strings += [" " * n for n in (3, 5, 8, 17)] + ["\n" * n for n in (2, 3, 7)]
    strings += ["a" * n for n in (50, 200, 1000)]
    strings += ["ab" * 300, "1" * 100, "🙂" * 30, "的" * 50]
    while len(strings) < count:
        n = rng.choice([1, 2, 3, 4, 6, 8, 12])
        parts = [fragment(rng) for _ in range(n)]
        sep = rng.choice(["", " ", " ", " ", "\n", "\t", "  "])
        strings.append(sep.join(parts))
    return strings
