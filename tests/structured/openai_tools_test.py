#!/usr/bin/env python3
"""Forced tool calls (tool_choice "required" and a named function) with `strict` tools through
/v1/chat/completions and the real `openai` SDK, on random-weight models where the constraint alone
keeps the output valid:
  - a random DeepSeek-V3-architecture model with DeepSeek-V3's tokenizer and template (its
    tool-call tokens);
  - the same model with Qwen3's chat template (Hermes <tool_call>{...}</tool_call>, spelled in
    bytes by this vocabulary);
when ../shared/data has the tokenizers (skipped otherwise).
Every call the server returns parses as JSON and validates with `jsonschema` against its
function's parameters; a finished choice (finish_reason "tool_calls") holds only calls, of the
named function when one is forced, one at most when parallel_tool_calls is false; whole and
streamed. Bad tool_choice values and strict schemas the server cannot enforce are 400s naming the
field, and the server keeps serving.
tool_choice "auto" (the default) with strict tools, on the DeepSeek-V3 model and on a random model
with Qwen3's tokenizer (where <tool_call> is one token): the model writes free text and, once it
opens a call, the call is constrained. A logit_bias on the opening token makes the random model
open calls often; every call returned names a tool of the request, a strict tool's arguments
validate with jsonschema and a non-strict tool's are a JSON object; text may surround the calls.
  openai_tools_test.py --moeserve BIN --source DIR    (run by tests/http/run_openai_test.sh)
Installs jsonschema into the venv it runs in when missing.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import openai

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "http"))
from openai_test_util import Server, parse_args, set_chat_template  # noqa: E402

try:
    import jsonschema
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "jsonschema==4.26.0"], check=True)
    import jsonschema

ARGS = None
ASK = [{"role": "user", "content": "Book a table and tell me the weather in Paris."}]


def fn(name, parameters, strict=True):
    return {"type": "function", "function": {"name": name, "description": f"The {name} tool.",
                                             "parameters": parameters, "strict": strict}}


TOOLS = [
    fn("get_weather", {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                       "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 12},
                                      "unit": {"enum": ["celsius", "fahrenheit"]}}}),
    fn("book_table", {"type": "object", "additionalProperties": False,
                      "required": ["restaurant", "people", "time"],
                      "properties": {"restaurant": {"type": "string", "maxLength": 16},
                                     "people": {"type": "integer", "minimum": 1, "maximum": 12},
                                     "time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                                     "notes": {"type": ["string", "null"], "maxLength": 8}}}),
    fn("add_tags", {"type": "object", "additionalProperties": False, "required": ["tags"],
                    "properties": {"tags": {"type": "array", "maxItems": 3,
                                            "items": {"type": "string", "maxLength": 6}},
                                   "flag": {"type": "boolean"}}}),
    fn("no_arguments", {"type": "object", "properties": {}, "additionalProperties": False}),
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def random_v3_model(work):
    tokenizer = os.path.join(ARGS.data, "tokenizers", "deepseek_v3")
    if not os.path.isfile(os.path.join(tokenizer, "tokenizer.json")):
        return None
    out = os.path.join(work, "random_v3_129k")
    subprocess.run([ARGS.moeserve, "make-model", "--config",
                    os.path.join(HERE, "acceptance", "random_v3_129k.json"), "--out", out, "--seed", "0",
                    "--dtype", "bf16"], check=True, stdout=subprocess.DEVNULL)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer, f), out)
    return out


def random_qwen3_model(work):
    """The random DeepSeek-V3-architecture model with Qwen3's tokenizer, vocabulary and template."""
    tokenizer = os.path.join(ARGS.data, "tokenizers", "qwen3")
    if not os.path.isfile(os.path.join(tokenizer, "tokenizer.json")):
        return None
    with open(os.path.join(HERE, "acceptance", "random_v3_129k.json"), encoding="utf-8") as f:
        config = json.load(f)
    config.update(vocab_size=151936, bos_token_id=151643, eos_token_id=151645)
    config_path = os.path.join(work, "random_qwen3.json")
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    out = os.path.join(work, "random_qwen3")
    subprocess.run([ARGS.moeserve, "make-model", "--config", config_path, "--out", out, "--seed", "0",
                    "--dtype", "bf16"], check=True, stdout=subprocess.DEVNULL)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer, f), out)
    return out


# For "auto": the strict tools plus a non-strict one whose schema the server cannot enforce.
LOOSE = fn("loose", {"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}},
           strict=False)
AUTO_TOOLS = TOOLS + [LOOSE]


class ServerCase:
    """A server on the subclass's model, and the checks of returned calls."""

    model_dir = None

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="openai_tools")
        cls.model_dir = cls.make_model(cls.work)
        if cls.model_dir is None:
            raise unittest.SkipTest("no tokenizer for this model in the shared data")
        cls.server = Server(ARGS.moeserve, cls.model_dir, "--served-model-name", "m", "--max-model-len", "1024")
        cls.client = openai.OpenAI(base_url=cls.server.base_url(), api_key="x", max_retries=0, timeout=300)

    @classmethod
    def tearDownClass(cls):
        if cls.model_dir is not None:
            rc = cls.server.stop()
            shutil.rmtree(cls.work, ignore_errors=True)
            assert rc == 0, f"exit status {rc} after SIGTERM:\n{cls.server.log()}"

    def check_calls(self, calls, only=None, at_most=None):
        self.assertTrue(calls, "a finished forced choice without calls")
        if at_most is not None:
            self.assertLessEqual(len(calls), at_most)
        for call in calls:
            name, arguments = call["name"], call["arguments"]
            if only is not None:
                self.assertEqual(name, only)
            self.assertIn(name, SCHEMAS)
            jsonschema.validate(json.loads(arguments), SCHEMAS[name],
                                format_checker=jsonschema.FormatChecker())

    def check_auto_calls(self, calls):
        for call in calls:
            name, arguments = call["name"], json.loads(call["arguments"])
            if name == "loose":
                self.assertIsInstance(arguments, dict)
            else:
                self.assertIn(name, SCHEMAS)
                jsonschema.validate(arguments, SCHEMAS[name], format_checker=jsonschema.FormatChecker())


class AutoCase(ServerCase):
    """tool_choice "auto" with strict tools; `trigger` is the token that opens a call."""

    trigger = None

    def auto(self, bias, **kwargs):
        """[(finish_reason, content, calls)] of one request, with `bias` on the opening token."""
        out = self.client.chat.completions.create(model="m", messages=ASK, tools=AUTO_TOOLS, max_tokens=240,
                                                  logit_bias={str(self.trigger): bias}, **kwargs)
        return [(c.finish_reason, c.message.content or "",
                 [{"name": t.function.name, "arguments": t.function.arguments}
                  for t in c.message.tool_calls or []]) for c in out.choices]

    def test_auto_calls_are_constrained_once_opened(self):
        results = []
        for seed in range(4):
            results += self.auto(9, n=4, temperature=1.0, seed=seed)
        results += self.auto(9, n=2, temperature=1.0, seed=9, parallel_tool_calls=False)
        calls = [call for _, _, cs in results for call in cs]
        self.assertGreaterEqual(len(calls), 3, f"too few calls to check: {results}")
        for reason, _, cs in results:
            self.check_auto_calls(cs)
            if cs and reason != "length":
                self.assertEqual(reason, "tool_calls")
        for _, _, cs in results[-2:]:
            self.assertLessEqual(len(cs), 1)
        # Without the bias the random model writes free text, and the request still finishes.
        plain = self.auto(0, n=2, temperature=1.0, seed=1)
        for reason, _, cs in plain:
            self.assertIn(reason, ("stop", "length", "tool_calls"))
            self.check_auto_calls(cs)

    def test_auto_streamed(self):
        chunks = self.client.chat.completions.create(model="m", messages=ASK, tools=AUTO_TOOLS, max_tokens=240,
                                                     logit_bias={str(self.trigger): 9}, n=3, temperature=1.0,
                                                     seed=21, stream=True)
        calls = {}
        for chunk in chunks:
            for choice in chunk.choices:
                for c in choice.delta.tool_calls or []:
                    entry = calls.setdefault((choice.index, c.index), {"name": "", "arguments": ""})
                    entry["name"] += c.function.name or ""
                    entry["arguments"] += c.function.arguments or ""
        self.check_auto_calls(list(calls.values()))


class ToolsCase(ServerCase):
    """Forced tool calls."""

    def whole(self, **kwargs):
        """(finished choices' calls, number of choices) of one request."""
        out = self.client.chat.completions.create(model="m", messages=ASK, tools=TOOLS, max_tokens=160,
                                                  **kwargs)
        finished = []
        for choice in out.choices:
            calls = [{"name": c.function.name, "arguments": c.function.arguments}
                     for c in choice.message.tool_calls or []]
            for c in choice.message.tool_calls or []:
                self.assertEqual(c.type, "function")
                self.assertTrue(c.id.startswith("call_"))
            if choice.finish_reason == "length":
                continue  # cut: what it holds is content, never a half call
            self.assertEqual(choice.finish_reason, "tool_calls", choice)
            self.assertFalse((choice.message.content or "").strip(), choice.message.content)
            finished.append(calls)
        return finished, len(out.choices)

    def test_required_any_tool(self):
        finished = []
        for seed in range(3):
            got, n = self.whole(tool_choice="required", n=4, temperature=1.0, seed=seed)
            self.assertEqual(n, 4)
            finished += got
        got, _ = self.whole(tool_choice="required", temperature=0.0)
        finished += got
        self.assertGreaterEqual(len(finished), 4, "too few choices finished within max_tokens")
        for calls in finished:
            self.check_calls(calls)

    def test_named_function_and_no_parallel_calls(self):
        for name in SCHEMAS:
            finished, _ = self.whole(tool_choice={"type": "function", "function": {"name": name}}, n=3,
                                     temperature=1.0, seed=11)
            for calls in finished:
                self.check_calls(calls, only=name, at_most=1)
        finished, _ = self.whole(tool_choice="required", parallel_tool_calls=False, n=4, temperature=1.0,
                                 seed=5)
        for calls in finished:
            self.check_calls(calls, at_most=1)

    def test_streamed(self):
        chunks = self.client.chat.completions.create(model="m", messages=ASK, tools=TOOLS, max_tokens=160,
                                                     tool_choice="required", n=3, temperature=1.0, seed=3,
                                                     stream=True)
        calls, finish = {}, {}
        for chunk in chunks:
            for choice in chunk.choices:
                for c in choice.delta.tool_calls or []:
                    entry = calls.setdefault(choice.index, {}).setdefault(c.index, {"name": "", "arguments": ""})
                    entry["name"] += c.function.name or ""
                    entry["arguments"] += c.function.arguments or ""
                finish[choice.index] = choice.finish_reason or finish.get(choice.index)
        self.assertEqual(sorted(finish), [0, 1, 2])
        for index, reason in finish.items():
            if reason == "length":
                continue
            self.assertEqual(reason, "tool_calls")
            self.check_calls([calls[index][k] for k in sorted(calls.get(index, {}))])

    def test_bad_requests_are_400_naming_the_field(self):
        bad_strict = TOOLS + [fn("unique", {"type": "object", "properties": {
            "xs": {"type": "array", "uniqueItems": True}}})]
        cases = [
            ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
             "tool_choice.function.name"),
            ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
            ({"tool_choice": "required"}, "tool_choice"),
            ({"tools": bad_strict, "tool_choice": "required"}, "tools[4].function.parameters"),
            ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}},
             "tool_choice"),
            ({"tools": [fn("f", {"type": "object"}, strict="yes")]}, "tools[0].function.strict"),
        ]
        for body, field in cases:
            with self.assertRaises(openai.BadRequestError, msg=field) as e:
                self.client.chat.completions.create(model="m", messages=ASK, max_tokens=4, extra_body=body)
            self.assertEqual(e.exception.status_code, 400)
            self.assertIn(field, str(e.exception))
        # Not strict: the same schema is relaxed to any JSON object for that function, not refused.
        relaxed = TOOLS + [fn("unique", {"type": "object", "properties": {
            "xs": {"type": "array", "uniqueItems": True}}}, strict=False)]
        out = self.client.chat.completions.create(model="m", messages=ASK, tools=relaxed, max_tokens=160,
                                                  tool_choice={"type": "function",
                                                               "function": {"name": "unique"}})
        choice = out.choices[0]
        if choice.finish_reason == "tool_calls":
            self.assertEqual(choice.message.tool_calls[0].function.name, "unique")
            self.assertIsInstance(json.loads(choice.message.tool_calls[0].function.arguments), dict)
        # Still serving.
        finished, _ = self.whole(tool_choice="required", temperature=0.0)
        for calls in finished:
            self.check_calls(calls)


class HermesQwen3Test(ToolsCase, unittest.TestCase):
    @classmethod
    def make_model(cls, work):
        """The random DeepSeek-V3-architecture model with Qwen3's chat template (Hermes calls)."""
        template = os.path.join(ARGS.data, "tokenizers", "qwen3", "tokenizer_config.json")
        out = random_v3_model(work) if os.path.isfile(template) else None
        if out is not None:
            set_chat_template(out, template)
        return out


class DeepSeekV3Test(ToolsCase, AutoCase, unittest.TestCase):
    trigger = 128806  # <｜tool▁calls▁begin｜>

    @classmethod
    def make_model(cls, work):
        return random_v3_model(work)


class Qwen3AutoTest(AutoCase, unittest.TestCase):
    trigger = 151657  # <tool_call>

    @classmethod
    def make_model(cls, work):
        return random_qwen3_model(work)


if __name__ == "__main__":
    ARGS, rest = parse_args("--moeserve", "--source")
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)
