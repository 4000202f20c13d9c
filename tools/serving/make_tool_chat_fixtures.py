"""Writes tests/fixtures/serving/tool_chat.jsonl: OpenAI-shaped tool conversations (assistant
messages with tool_calls, `tool` messages with tool_call_id, OpenAI `tools` definitions) rendered
by transformers' apply_chat_template(..., tokenize=False) through the DeepSeek-V3, DeepSeek-R1 and
Qwen3 chat templates: the messages exactly as the chat endpoint receives them.

usage: make_tool_chat_fixtures.py SHARED_DATA_DIR OUT_FILE

The first line is a header {"generator", "transformers_version", "jinja2_version"}. Each further
line is one case {"template", "messages", "tools", "add_generation_prompt", "extra", and either
"expected": the rendered string, or "error": transformers' exception}.

transformers 5 drops message keys whose value is null before rendering, and DeepSeek's templates
only write an assistant's tool calls when its content `is none`: OpenAI's {"content": null,
"tool_calls": [...]} raises there. Those cases also carry "keep_null_expected": the same template
rendered with the null kept (transformers 4's behaviour, the format DeepSeek's models were trained
on), which the tool-call parsers are checked against. "template" is deepseek_v3 or
qwen3 (the tokenizer directory's own template) or deepseek_r1
(tests/fixtures/tokenizer/chat_templates/deepseek_r1.jinja with the deepseek_v3 tokenizer).
"""

import json
import os
import sys

import jinja2
import transformers
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Web search.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}


def call(id_, name, arguments):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def conversations():
    user = {"role": "user", "content": "What's the weather in Paris and in 東京?"}
    system = {"role": "system", "content": "You are a helpful assistant."}
    c1 = call("call_A1b2C3d4E5f6G7h8I9j0K1l2", "get_weather", {"city": "Paris", "unit": "celsius"})
    c2 = call("call_Z9y8X7w6V5u4T3s2R1q0P9o8", "get_weather", {"city": "東京", "unit": "celsius"})
    c3 = call("call_search0000000000000001", "search", {"query": "moeserve \"quoted\" {braces}", "nested": {"a": [1, 2.5, None, True]}})
    one = {"role": "assistant", "content": None, "tool_calls": [c1]}
    two = {"role": "assistant", "content": None, "tool_calls": [c1, c2]}
    three = {"role": "assistant", "content": None, "tool_calls": [c1, c2, c3]}
    r1 = {"role": "tool", "tool_call_id": c1["id"], "content": '{"temperature": 21, "condition": "sunny"}'}
    r2 = {"role": "tool", "tool_call_id": c2["id"], "content": "18°C, light rain ☔"}
    r3 = {"role": "tool", "tool_call_id": c3["id"], "content": "[]"}
    final = {"role": "assistant", "content": "Paris: 21 °C and sunny. 東京: 18 °C with light rain."}
    again = {"role": "user", "content": "And search for moeserve."}
    with_text = {"role": "assistant", "content": "Let me check both cities.", "tool_calls": [c1, c2]}
    return [
        ([user, one], False),
        ([system, user, two], False),
        ([user, three], False),
        ([user, one, r1], True),
        ([system, user, two, r1, r2], True),
        ([user, two, r1, r2, final], False),
        ([user, two, r1, r2, final, again], True),
        ([user, two, r1, r2, final, again, {"role": "assistant", "content": None, "tool_calls": [c3]}, r3], True),
        ([user, with_text], False),
        ([user, with_text, r1, r2], True),
        ([user], True),
    ]


def keep_null_render(tok, template, messages, tools, agp, extra):
    """The template rendered on the messages as given (nulls kept), as transformers 4 did."""
    specials = {k: getattr(tok, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    return render_jinja_template([messages], tools=tools, chat_template=template or tok.chat_template,
                                 add_generation_prompt=agp, **specials, **extra)[0][0]


def main():
    shared, out_file = sys.argv[1], sys.argv[2]
    fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
    ds = AutoTokenizer.from_pretrained(os.path.join(shared, "tokenizers", "deepseek_v3"))
    qwen = AutoTokenizer.from_pretrained(os.path.join(shared, "tokenizers", "qwen3"))
    with open(os.path.join(fixtures, "tokenizer", "chat_templates", "deepseek_r1.jinja"), encoding="utf-8") as f:
        r1_template = f.read()
    templates = [("deepseek_v3", ds, None, [{}]), ("deepseek_r1", ds, r1_template, [{}]),
                 ("qwen3", qwen, None, [{}, {"enable_thinking": False}])]
    cases = 0
    with open(out_file, "w", encoding="utf-8") as f:
        header = {"generator": "tools/serving/make_tool_chat_fixtures.py",
                  "transformers_version": transformers.__version__, "jinja2_version": jinja2.__version__}
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for name, tok, template, extras in templates:
            for messages, agp in conversations():
                for tools in (None, [WEATHER, SEARCH]):
                    for extra in extras:
                        case = {"template": name, "messages": messages, "tools": tools,
                                "add_generation_prompt": agp, "extra": extra}
                        kwargs = dict(extra)
                        if template is not None:
                            kwargs["chat_template"] = template
                        try:
                            case["expected"] = tok.apply_chat_template(
                                messages, tools=tools, add_generation_prompt=agp, tokenize=False, **kwargs)
                        except Exception as e:  # noqa: BLE001 - the C++ side must fail too
                            case["error"] = f"{type(e).__name__}: {e}"
                            if any(v is None for m in messages for v in m.values()):
                                try:
                                    case["keep_null_expected"] = keep_null_render(tok, template, messages, tools,
                                                                                  agp, extra)
                                except Exception:  # noqa: BLE001 - e.g. Qwen3 fails on a null content
                                    pass
                        f.write(json.dumps(case, ensure_ascii=False) + "\n")
                        cases += 1
    print(f"{out_file}: {cases} cases")


if __name__ == "__main__":
    main()
