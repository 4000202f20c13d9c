#!/usr/bin/env python3
"""Reasoning split and tool calls through /v1/chat/completions with the real `openai` SDK, on the
Qwen3 template (model-opened <think>, Hermes <tool_call>) and on an R1-style template (DeepSeek's,
whose generation prompt ends in "<think>\\n"; DeepSeek's tool-call tokens), whole and streamed.

The models are script models (script_model.py): tiny Llamas over the real tokenizers whose greedy
output is a fixed text, so what the server makes of that text is the only thing under test.
Needs the shared data's tokenizers (skips without them).
  openai_chat_parsers_test.py --moeserve BIN --source DIR
"""

import json
import os
import sys
import tempfile
import unittest

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from openai_test_util import Server, parse_args, request  # noqa: E402
from script_model import make_script_model  # noqa: E402

ARGS = None
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Paris and in Tokyo?"}]


def tokenizer_dir(name):
    return os.path.join(ARGS.data, "tokenizers", name)


def qwen3_template():
    with open(os.path.join(tokenizer_dir("qwen3"), "tokenizer_config.json"), encoding="utf-8") as f:
        return json.load(f)["chat_template"]


def r1_template():
    path = os.path.join(ARGS.source, "tests", "fixtures", "tokenizer", "chat_templates",
                        "deepseek_r1.jinja")
    with open(path, encoding="utf-8") as f:
        return f.read()


class ScriptServer:
    """A server over a script model that writes `pieces`."""

    def __init__(self, tokenizer, template, pieces, eos):
        self.dir = make_script_model(tempfile.mkdtemp(prefix="script_model"), tokenizer_dir(tokenizer),
                                     template, pieces, eos)
        self.server = Server(ARGS.moeserve, self.dir, "--served-model-name", "script")
        self.client = openai.OpenAI(base_url=self.server.base_url(), api_key="x", max_retries=0)

    def chat(self, **kwargs):
        return self.client.chat.completions.create(model="script", messages=ASK, **kwargs)

    def stream(self, **kwargs):
        """The streamed chunks, and the deltas gathered per field."""
        chunks = list(self.chat(stream=True, **kwargs))
        got = {"reasoning": "", "content": "", "tool_calls": {}, "finish": None, "role": None}
        for c in chunks:
            for choice in c.choices:
                d = choice.delta
                got["role"] = got["role"] or d.role
                got["reasoning"] += getattr(d, "reasoning_content", None) or ""
                got["content"] += d.content or ""
                for call in d.tool_calls or []:
                    entry = got["tool_calls"].setdefault(call.index, {"id": None, "name": "",
                                                                      "arguments": ""})
                    entry["id"] = entry["id"] or call.id
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
                got["finish"] = choice.finish_reason or got["finish"]
        self_ids = {c.id for c in chunks}
        assert len(self_ids) == 1, self_ids
        return chunks, got

    def stop(self):
        assert self.server.stop() == 0, self.server.log()


def require(tokenizer):
    if not os.path.isfile(os.path.join(tokenizer_dir(tokenizer), "tokenizer.json")):
        raise unittest.SkipTest(f"shared data tokenizers/{tokenizer} not found")


class Qwen3ScriptCase(unittest.TestCase):
    """Tests sharing one server over a Qwen3 script model that writes PIECES."""
    PIECES = []

    @classmethod
    def setUpClass(cls):
        require("qwen3")
        cls.s = ScriptServer("qwen3", qwen3_template(), cls.PIECES, "<|im_end|>")

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()


class Qwen3ReasoningTest(Qwen3ScriptCase):
    PIECES = ["<think>\n", "The user asks for the weather.", "\n</think>\n\n", "It is sunny",
              " in Paris."]

    def test_whole_and_streamed_split(self):
        whole = self.s.chat(max_tokens=20)
        m = whole.choices[0].message
        self.assertEqual(m.reasoning_content, "The user asks for the weather.")
        self.assertEqual(m.content, "It is sunny in Paris.")
        self.assertEqual(whole.choices[0].finish_reason, "stop")
        self.assertEqual(whole.usage.completion_tokens, len(self.PIECES) + 1)  # and EOS
        _, got = self.s.stream(max_tokens=20)
        self.assertEqual(got["role"], "assistant")
        self.assertEqual(got["reasoning"], m.reasoning_content)
        self.assertEqual(got["content"], m.content)
        self.assertEqual(got["finish"], "stop")

    def test_max_completion_tokens_counts_reasoning_tokens(self):
        out = self.s.chat(max_completion_tokens=2)
        self.assertEqual(out.choices[0].finish_reason, "length")
        self.assertEqual(out.usage.completion_tokens, 2)
        self.assertEqual(out.choices[0].message.reasoning_content, "The user asks for the weather.")
        self.assertEqual(out.choices[0].message.content, "")

    def test_reasoning_parser_flag_turns_it_off(self):
        server = Server(ARGS.moeserve, self.s.dir, "--reasoning-parser", "none")
        try:
            client = openai.OpenAI(base_url=server.base_url(), api_key="x", max_retries=0)
            m = client.chat.completions.create(model=os.path.basename(self.s.dir), messages=ASK,
                                               max_tokens=20).choices[0].message
            self.assertIsNone(getattr(m, "reasoning_content", None))
            self.assertEqual(m.content, "".join(self.PIECES))
        finally:
            self.assertEqual(server.stop(), 0)


class Qwen3ToolCallTest(Qwen3ScriptCase):
    PIECES = ["<tool_call>\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
              "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ",
              "{\"city\": \"Tokyo\"}}\n</tool_call>"]

    def test_parallel_calls_whole_and_streamed(self):
        out = self.s.chat(tools=TOOLS, max_tokens=20)
        choice = out.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        calls = choice.message.tool_calls
        self.assertEqual([c.function.name for c in calls], ["get_weather", "get_weather"])
        self.assertEqual([json.loads(c.function.arguments) for c in calls],
                         [{"city": "Paris"}, {"city": "Tokyo"}])
        self.assertTrue(all(c.id.startswith("call_") and c.type == "function" for c in calls))
        self.assertNotEqual(calls[0].id, calls[1].id)
        self.assertFalse(choice.message.content)
        _, got = self.s.stream(tools=TOOLS, max_tokens=20)
        self.assertEqual(got["finish"], "tool_calls")
        self.assertEqual(sorted(got["tool_calls"]), [0, 1])
        self.assertEqual([json.loads(got["tool_calls"][i]["arguments"]) for i in (0, 1)],
                         [{"city": "Paris"}, {"city": "Tokyo"}])
        self.assertEqual(got["content"], "")

    def test_tool_choice_none_and_parallel_false(self):
        none = self.s.chat(tools=TOOLS, tool_choice="none", max_tokens=20).choices[0]
        self.assertIsNone(none.message.tool_calls)
        self.assertEqual(none.message.content, "".join(self.PIECES))
        self.assertEqual(none.finish_reason, "stop")
        one = self.s.chat(tools=TOOLS, parallel_tool_calls=False, max_tokens=20).choices[0]
        self.assertEqual(len(one.message.tool_calls), 1)
        self.assertEqual(json.loads(one.message.tool_calls[0].function.arguments), {"city": "Paris"})

    def test_tool_results_render_through_the_template(self):
        first = self.s.chat(tools=TOOLS, max_tokens=20).choices[0].message
        messages = ASK + [first.model_dump(exclude_none=True)]
        for call, weather in zip(first.tool_calls, ["sunny", "rainy"]):
            messages.append({"role": "tool", "tool_call_id": call.id, "content": weather})
        _, _, body = request(self.s.server.http_port, "POST", "/tokenize",
                             {"messages": messages, "tools": TOOLS})
        ids = json.loads(body)["tokens"]
        _, _, text = request(self.s.server.http_port, "POST", "/detokenize", {"tokens": ids})
        rendered = json.loads(text)["prompt"]
        self.assertIn("<tool_response>\nsunny\n</tool_response>", rendered)
        self.assertIn("<tool_response>\nrainy\n</tool_response>", rendered)
        again = self.s.client.chat.completions.create(model="script", messages=messages,
                                                      tools=TOOLS, max_tokens=20)
        self.assertEqual(again.choices[0].finish_reason, "tool_calls")


class Qwen3MalformedToolCallTest(unittest.TestCase):
    PIECES = ["<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {oops}}\n</tool_call>"]

    def test_arguments_that_are_not_json_come_back_as_content(self):
        require("qwen3")
        s = ScriptServer("qwen3", qwen3_template(), self.PIECES, "<|im_end|>")
        try:
            choice = s.chat(tools=TOOLS, max_tokens=10).choices[0]
            self.assertIsNone(choice.message.tool_calls)
            self.assertEqual(choice.message.content, self.PIECES[0])
            self.assertEqual(choice.finish_reason, "stop")
            _, got = s.stream(tools=TOOLS, max_tokens=10)
            self.assertEqual(got["content"], self.PIECES[0])
            self.assertEqual(got["tool_calls"], {})
        finally:
            s.stop()


class R1Test(unittest.TestCase):
    """DeepSeek's template with R1's generation prompt: the output starts inside <think>."""

    REASONING = ["The user wants the weather.", "\n</think>\n\n", "It is sunny in Paris."]
    CALLS = ["I will call the tool twice.", "\n</think>\n\n",
             "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
             "```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>",
             "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Tokyo\"}\n"
             "```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"]
    EOS = "<｜end▁of▁sentence｜>"

    def setUp(self):
        require("deepseek_v3")

    def test_reasoning_split_when_the_prompt_opens_think(self):
        s = ScriptServer("deepseek_v3", r1_template(), self.REASONING, self.EOS)
        try:
            _, _, body = request(s.server.http_port, "POST", "/tokenize", {"messages": ASK})
            _, _, text = request(s.server.http_port, "POST", "/detokenize",
                                 {"tokens": json.loads(body)["tokens"]})
            self.assertTrue(json.loads(text)["prompt"].endswith("<think>\n"))
            m = s.chat(max_tokens=20).choices[0].message
            self.assertEqual(m.reasoning_content, "The user wants the weather.")
            self.assertEqual(m.content, "It is sunny in Paris.")
            _, got = s.stream(max_tokens=20)
            self.assertEqual((got["reasoning"], got["content"]), (m.reasoning_content, m.content))
        finally:
            s.stop()

    def test_deepseek_tool_call_tokens(self):
        s = ScriptServer("deepseek_v3", r1_template(), self.CALLS, self.EOS)
        try:
            choice = s.chat(tools=TOOLS, max_tokens=20).choices[0]
            self.assertEqual(choice.finish_reason, "tool_calls")
            self.assertEqual(choice.message.reasoning_content, "I will call the tool twice.")
            self.assertEqual([json.loads(c.function.arguments) for c in choice.message.tool_calls],
                             [{"city": "Paris"}, {"city": "Tokyo"}])
            _, got = s.stream(tools=TOOLS, max_tokens=20)
            self.assertEqual(got["finish"], "tool_calls")
            self.assertEqual(got["reasoning"], "I will call the tool twice.")
            self.assertEqual(len(got["tool_calls"]), 2)
        finally:
            s.stop()


def main():
    global ARGS
    ARGS, rest = parse_args("--moeserve", "--source")
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
