"""Writes tests/fixtures/tokenizer/chat_<template>.jsonl: chat-template renderings by transformers'
apply_chat_template(..., tokenize=False) for a deterministic set of conversations.

usage: make_chat_fixtures.py SHARED_DATA_DIR OUT_DIR

Templates: the chat_template of deepseek_v3 and qwen3 (from SHARED_DATA_DIR/tokenizers), and the
templates under OUT_DIR/chat_templates/ (DeepSeek-R1, Llama-3, a synthetic feature template)
rendered with the deepseek_v3 tokenizer's special tokens.

The first line is a header {"template", "tokenizer", "transformers_version", "jinja2_version"}.
Each further line is one case {"messages", "tools", "add_generation_prompt", "extra", and either
"expected": the rendered string, or "error": transformers' exception message}.
"""

import json
import os
import random
import sys

import jinja2
import transformers
from transformers import AutoTokenizer

UNICODE_TEXTS = [
    "你好，世界！请用中文回答。",
    "Привет, как дела?",
    "مرحبا بالعالم",
    "こんにちは 🌸 元気ですか",
    "👨‍👩‍👧‍👦 family emoji and 🇯🇵 flag",
    "Ünïcödé àccents — “quotes” and ‘single’",
    "tab\tseparated\tvalues\nand a second line\r\nwindows line",
    "  leading and trailing spaces  ",
    "\n\nnewlines around\n\n",
    "math: ∑_{i=1}^{n} i² = n(n+1)(2n+1)/6",
    "code: ```python\nprint('hi')\n```",
    "special token text <|im_start|> and <｜User｜> inside content",
    "json-ish {\"a\": [1, 2, {\"b\": null}]}",
    "backslashes \\n \\t \\\\ and quotes ' \"",
    "zero\u200bwidth and nbsp\u00a0here",
]

USER_TEXTS = [
    "Hi there!",
    "What is the capital of France?",
    "Can you write a haiku about autumn leaves?",
    "Explain quantum entanglement simply.",
    "Summarize: The quick brown fox jumps over the lazy dog. The dog sleeps.",
    "What's 17 * 23?",
    "Translate 'good morning' to German.",
    "",
] + UNICODE_TEXTS

ASSISTANT_TEXTS = [
    "Hello! How can I help you today?",
    "The capital of France is Paris.",
    "Crimson leaves descend\nwhispering to the cold earth\nautumn says goodbye",
    "17 * 23 = 391.",
    "Guten Morgen!",
    "",
    "Sure — here it is: 你好 🌍",
]

THINKING = [
    "The user greets me. I should greet back.",
    "Paris is the capital.\nDouble-check: yes.",
    "  multiply 17 by 23: 17*20=340, 17*3=51, total 391  ",
    "",
    "思考中……🤔",
]

SYSTEM_TEXTS = [
    "You are a helpful assistant.",
    "You are a pirate. Answer like one!",
    "Always answer in JSON.",
    "",
    "系统提示：请简洁回答。",
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web — returns top results (ünïcode ok).",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "max_results": {"type": "integer", "default": 5}},
            "required": ["query"],
        },
    },
}
TOOLS = [[WEATHER_TOOL], [WEATHER_TOOL, SEARCH_TOOL]]


def tool_call(rng, args_as_string):
    name, args = rng.choice([
        ("get_weather", {"city": rng.choice(["Paris", "東京", "New York"]), "unit": "celsius"}),
        ("search", {"query": rng.choice(["moeserve", "llm inference", "météo"]), "max_results": 3}),
        ("get_weather", {}),
    ])
    arguments = json.dumps(args, ensure_ascii=False) if args_as_string else args
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def tool_result(rng):
    return rng.choice([
        '{"temperature": 21, "condition": "sunny"}',
        "18°C, light rain ☔",
        "<tool_response>nested</tool_response>",
        "",
        '[{"title": "moeserve", "url": "https://example.com"}]',
    ])


def assistant_message(rng, style):
    if style == "think":
        content = f"<think>\n{rng.choice(THINKING)}\n</think>\n\n{rng.choice(ASSISTANT_TEXTS)}"
        return {"role": "assistant", "content": content}
    if style == "reasoning_field":
        return {"role": "assistant", "content": rng.choice(ASSISTANT_TEXTS),
                "reasoning_content": rng.choice(THINKING)}
    return {"role": "assistant", "content": rng.choice(ASSISTANT_TEXTS)}


def conversation(rng, args_as_string, allow_tools):
    """A random but well-formed conversation: optional system, turns, tool rounds."""
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_TEXTS)})
    turns = rng.randint(1, 4)
    for turn in range(turns):
        messages.append({"role": "user", "content": rng.choice(USER_TEXTS)})
        last = turn == turns - 1
        if last and rng.random() < 0.5:
            break  # ends on a user message: the usual generation case
        if allow_tools and rng.random() < 0.35:
            calls = [tool_call(rng, args_as_string) for _ in range(rng.randint(1, 3))]
            msg = {"role": "assistant", "content": None, "tool_calls": calls}
            if not args_as_string and rng.random() < 0.5:
                msg["content"] = rng.choice(["Let me check.", ""])
            messages.append(msg)
            for _ in calls:
                messages.append({"role": "tool", "content": tool_result(rng)})
            if rng.random() < 0.7:
                messages.append(assistant_message(rng, "plain"))
        else:
            messages.append(assistant_message(rng, rng.choice(["plain", "think", "reasoning_field"])))
    return messages


def fixed_cases():
    """Hand-picked edge cases, rendered for every template."""
    u = lambda c: {"role": "user", "content": c}  # noqa: E731
    a = lambda c: {"role": "assistant", "content": c}  # noqa: E731
    s = lambda c: {"role": "system", "content": c}  # noqa: E731
    return [
        [u("Hello")],
        [s("sys"), u("Hello")],
        [s("first"), s("second"), u("Hello")],
        [u("Hello"), a("Hi!")],
        [u(""), a("")],
        [u("q1"), a("<think>r1</think>a1"), u("q2"), a("<think>\nr2\n</think>\n\na2")],
        [u("q"), a("no think tags but </think> in the middle")],
        [u("q"), {"role": "assistant", "content": "answer", "reasoning_content": "because"}],
        [u("q"), {"role": "assistant", "content": "answer", "thinking": "legacy field"}],
        [u("q"), {"role": "assistant", "content": "answer", "reasoning_content": None}],
        [u("<tool_response>x</tool_response>"), a("ok")],
        [u(t) for t in UNICODE_TEXTS[:5]],
        [u("only user"), a("only assistant"), u("again")],
        [],
        [a("assistant first")],
    ]


def render(tok, messages, tools, add_generation_prompt, extra, template):
    kwargs = dict(extra)
    if template is not None:
        kwargs["chat_template"] = template
    return tok.apply_chat_template(messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                   tokenize=False, **kwargs)


def write(name, tok, template, out_dir, rng, args_as_string, allow_tools, extras):
    cases = []
    for messages in fixed_cases():
        for agp in (False, True):
            cases.append((messages, None, agp, {}))
    while len(cases) < 220:
        messages = conversation(rng, args_as_string, allow_tools)
        tools = rng.choice(TOOLS) if allow_tools and rng.random() < 0.4 else None
        extra = rng.choice(extras)
        cases.append((messages, tools, rng.random() < 0.6, extra))
    path = os.path.join(out_dir, f"chat_{name}.jsonl")
    errors = 0
    with open(path, "w", encoding="utf-8") as f:
        header = {"template": name, "tokenizer": tok.name_or_path.rstrip("/").split("/")[-1],
                  "transformers_version": transformers.__version__, "jinja2_version": jinja2.__version__}
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for messages, tools, agp, extra in cases:
            case = {"messages": messages, "tools": tools, "add_generation_prompt": agp, "extra": extra}
            try:
                case["expected"] = render(tok, messages, tools, agp, extra, template)
            except Exception as e:  # noqa: BLE001 - the C++ side must fail too
                case["error"] = f"{type(e).__name__}: {e}"
                errors += 1
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    print(f"{path}: {len(cases)} cases ({errors} expected errors)")


def main():
    shared, out_dir = sys.argv[1], sys.argv[2]
    rng = random.Random(1234)
    ds = AutoTokenizer.from_pretrained(os.path.join(shared, "tokenizers", "deepseek_v3"))
    qwen = AutoTokenizer.from_pretrained(os.path.join(shared, "tokenizers", "qwen3"))
    qwen_extras = [{}, {}, {"enable_thinking": False}, {"enable_thinking": True}]
    write("deepseek_v3", ds, None, out_dir, rng, True, True, [{}])
    write("qwen3", qwen, None, out_dir, rng, False, True, qwen_extras)
    for name, allow_tools in (("deepseek_r1", True), ("llama3", False), ("features", True)):
        with open(os.path.join(out_dir, "chat_templates", f"{name}.jinja"), encoding="utf-8") as f:
            template = f.read()
        write(name, ds, template, out_dir, rng, True, allow_tools, [{}])


if __name__ == "__main__":
    main()
