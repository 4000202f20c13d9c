#!/usr/bin/env python3
"""The OpenAI-compatible HTTP API of `moeserve serve`, through the real `openai` SDK (and raw HTTP
where the SDK hides the bytes): models, completions, chat, streaming with its invariants, n and
seeds, stop strings, both logprob formats, tokenize/detokenize, every error path with the server
healthy afterwards, greedy HTTP == greedy gRPC, a client that disconnects or stops reading, SSE
keep-alive while queued, drain, API keys and TLS.

Run by CTest through run_openai_test.sh (which provides the SDK):
  openai_api_test.py --moeserve BIN --moeserve-cli BIN --source DIR
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from openai_test_util import (Server, chat_model_dir, parse_args, parse_sse,  # noqa: E402
                              request, sse_lines)

ARGS = None
MODEL = "tiny"
PROMPT = "Once upon a time"


def qwen3_template():
    return os.path.join(ARGS.data, "tokenizers", "qwen3", "tokenizer_config.json")


class ApiTest(unittest.TestCase):
    """One server over the default model with the Qwen3 chat template, shared by the tests."""

    @classmethod
    def setUpClass(cls):
        template = qwen3_template()
        if not os.path.isfile(template):  # the fixture template serves as well
            template = os.path.join(ARGS.source, "tests", "fixtures", "tokenizer", "chat_templates",
                                    "llama3.jinja")
        cls.model_dir = chat_model_dir(ARGS.source, template)
        cls.server = Server(ARGS.moeserve, cls.model_dir, "--served-model-name", MODEL,
                            "--max-model-len", "512", "--max-message-bytes", "100000")
        cls.client = openai.OpenAI(base_url=cls.server.base_url(), api_key="unused",
                                   max_retries=0, timeout=60)

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        assert rc == 0, f"exit status {rc} after SIGTERM:\n{cls.server.log()}"

    def assertHealthy(self):
        status, _, body = request(self.server.http_port, "GET", "/health")
        self.assertEqual((status, body), (200, b"SERVING\n"))
        out = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2)
        self.assertEqual(len(out.choices), 1)

    # ---- models
    def test_models(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [MODEL])
        self.assertEqual(self.client.models.retrieve(MODEL).id, MODEL)
        with self.assertRaises(openai.NotFoundError) as e:
            self.client.models.retrieve("gpt-4")
        self.assertEqual(e.exception.body["code"], "model_not_found")

    # ---- completions
    def test_completion_whole(self):
        out = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12,
                                             temperature=0)
        self.assertTrue(out.id.startswith("cmpl-"))
        self.assertEqual(out.object, "text_completion")
        self.assertEqual(out.model, MODEL)
        self.assertEqual(out.choices[0].finish_reason, "length")
        self.assertTrue(out.choices[0].text.startswith(", there was"), out.choices[0].text)
        self.assertEqual(out.usage.completion_tokens, 12)
        self.assertEqual(out.usage.total_tokens, out.usage.prompt_tokens + 12)

    def test_greedy_http_equals_greedy_grpc(self):
        http_text = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40,
                                                   temperature=0).choices[0].text
        grpc = subprocess.run([ARGS.moeserve_cli, "--addr", f"127.0.0.1:{self.server.grpc_port}",
                               "--max-tokens", "40", "--temperature", "0", PROMPT],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(grpc.returncode, 0, grpc.stderr)
        self.assertEqual(grpc.stdout.rstrip("\n"), http_text)
        self.assertGreater(len(http_text), 40)

    def test_prompt_forms(self):
        ids = request(self.server.http_port, "POST", "/tokenize", {"prompt": PROMPT})
        tokens = json.loads(ids[2])["tokens"]
        by_text = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0)
        by_ids = self.client.completions.create(model=MODEL, prompt=tokens, max_tokens=6, temperature=0)
        self.assertEqual(by_text.choices[0].text, by_ids.choices[0].text)
        batch = self.client.completions.create(model=MODEL, prompt=[PROMPT, "The cat"], max_tokens=4,
                                               temperature=0, n=2)
        self.assertEqual([c.index for c in batch.choices], [0, 1, 2, 3])
        self.assertEqual(batch.choices[0].text, by_text.choices[0].text[:len(batch.choices[0].text)])
        self.assertEqual(batch.choices[2].text, batch.choices[3].text)  # greedy: alike
        echo = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0,
                                              echo=True)
        self.assertTrue(echo.choices[0].text.startswith(PROMPT + ", there"), echo.choices[0].text)

    def test_completion_stream_invariants(self):
        stream = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10,
                                                temperature=0, stream=True,
                                                stream_options={"include_usage": True})
        chunks = list(stream)
        self.assertGreaterEqual(len(chunks), 2)
        self.assertEqual(len({c.id for c in chunks}), 1)
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        whole = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10,
                                               temperature=0)
        self.assertEqual(text, whole.choices[0].text)
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 10)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(finishes, ["length"])
        # The bytes: `data: {json}\n\n` events ending with `data: [DONE]\n\n`.
        raw, status, headers = sse_lines(self.server.http_port, "/v1/completions",
                                         {"model": MODEL, "prompt": PROMPT, "max_tokens": 5,
                                          "stream": True})
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/event-stream"))
        self.assertTrue(raw.endswith("data: [DONE]\n\n"))
        events = parse_sse(raw)
        self.assertEqual(events[-1], "[DONE]")
        self.assertEqual(sum(1 for e in events if e == "[DONE]"), 1)
        self.assertNotIn("usage", events[-2])  # no include_usage: no usage chunk

    # ---- chat
    def test_chat_whole_and_stream(self):
        messages = [{"role": "system", "content": "You tell stories."},
                    {"role": "user", "content": [{"type": "text", "text": "Tell me"},
                                                 {"type": "text", "text": "a story."}]}]
        whole = self.client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12,
                                                    temperature=0)
        self.assertTrue(whole.id.startswith("chatcmpl-"))
        self.assertEqual(whole.object, "chat.completion")
        self.assertEqual(whole.choices[0].message.role, "assistant")
        self.assertEqual(whole.usage.completion_tokens, 12)
        chunks = list(self.client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=12, temperature=0, stream=True,
            stream_options={"include_usage": True}))
        self.assertEqual(len({c.id for c in chunks}), 1)
        self.assertEqual(chunks[0].object, "chat.completion.chunk")
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 12)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].message.content)
        # max_completion_tokens counts the same way; neither: what the context leaves.
        capped = self.client.chat.completions.create(model=MODEL, messages=messages,
                                                     max_completion_tokens=3)
        self.assertEqual(capped.usage.completion_tokens, 3)
        self.assertEqual(capped.choices[0].finish_reason, "length")

    def test_chat_tool_result_messages_render(self):
        messages = [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}]
        # The tiny model's context cannot hold Qwen3's tool instructions: tokenize, then decode.
        status, _, body = request(self.server.http_port, "POST", "/tokenize",
                                  {"messages": messages, "tools": tools})
        self.assertEqual(status, 200, body)
        status, _, text = request(self.server.http_port, "POST", "/detokenize",
                                  {"tokens": json.loads(body)["tokens"]})
        rendered = json.loads(text)["prompt"]
        self.assertIn("get_weather", rendered)
        self.assertIn("sunny", rendered)
        out = self.client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3)
        self.assertEqual(out.usage.completion_tokens, 3)

    # ---- sampling
    def test_n_and_seed_are_reproducible(self):
        kwargs = dict(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=1.0, n=3, seed=1234)
        a = self.client.completions.create(**kwargs)
        b = self.client.completions.create(**kwargs)
        self.assertEqual([c.text for c in a.choices], [c.text for c in b.choices])
        self.assertEqual(sorted(c.index for c in a.choices), [0, 1, 2])
        self.assertGreater(len({c.text for c in a.choices}), 1)  # the samples differ
        # Streamed, the choices interleave, told apart by index, and add up to the same texts.
        texts = {}
        for chunk in self.client.completions.create(stream=True, **kwargs):
            for c in chunk.choices:
                texts[c.index] = texts.get(c.index, "") + c.text
        self.assertEqual([texts[i] for i in range(3)], [c.text for c in a.choices])
        chat = dict(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=6,
                    temperature=1.0, n=2, seed=99)
        c1 = self.client.chat.completions.create(**chat)
        c2 = self.client.chat.completions.create(**chat)
        self.assertEqual([c.message.content for c in c1.choices], [c.message.content for c in c2.choices])

    def test_stop_strings(self):
        free = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40,
                                              temperature=0).choices[0].text
        stop = free[20:26]
        out = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40,
                                             temperature=0, stop=[stop, "never"])
        self.assertEqual(out.choices[0].text, free[:free.index(stop)])
        self.assertEqual(out.choices[0].finish_reason, "stop")
        self.assertLess(out.usage.completion_tokens, 40)
        single = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40,
                                                temperature=0, stop=stop)
        self.assertEqual(single.choices[0].text, out.choices[0].text)
        streamed = "".join(c.choices[0].text for c in self.client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=40, temperature=0, stop=stop, stream=True))
        self.assertEqual(streamed, out.choices[0].text)

    def tokens(self, text):
        return json.loads(request(self.server.http_port, "POST", "/tokenize", {"prompt": text})[2])["tokens"]

    def test_more_parameters_reach_the_sampler(self):
        base = dict(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
        greedy = self.client.completions.create(**base).choices[0]
        ids = self.tokens(PROMPT + greedy.text)[len(self.tokens(PROMPT)):]  # the generated ids
        banned = self.client.completions.create(logit_bias={str(ids[0]): -100}, **base).choices[0]
        self.assertNotEqual(banned.text, greedy.text)
        stopped = self.client.completions.create(extra_body={"stop_token_ids": [ids[1]]}, **base)
        self.assertEqual(stopped.choices[0].finish_reason, "stop")
        self.assertEqual(stopped.usage.completion_tokens, 2)
        eos = self.client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=300, temperature=0,
            extra_body={"ignore_eos": True, "min_tokens": 5, "top_k": 5, "min_p": 0.01,
                        "repetition_penalty": 1.1, "priority": 1},
            presence_penalty=0.5, frequency_penalty=0.5, top_p=0.9, user="someone")
        self.assertEqual(eos.usage.completion_tokens, 300)

    # ---- logprobs
    def test_logprobs_legacy_completions_format(self):
        out = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=5,
                                             temperature=0, logprobs=3)
        lp = out.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 5)
        self.assertEqual("".join(lp.tokens), out.choices[0].text)
        self.assertEqual(len(lp.token_logprobs), 5)
        self.assertTrue(all(x <= 0 for x in lp.token_logprobs))
        for tok, top in zip(lp.tokens, lp.top_logprobs):
            self.assertIn(tok, top)
            self.assertGreaterEqual(len(top), 3)
        self.assertEqual(lp.text_offset[0], 0)
        self.assertEqual(lp.text_offset, sorted(lp.text_offset))
        echoed = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2,
                                                temperature=0, logprobs=1, echo=True)
        elp = echoed.choices[0].logprobs
        self.assertIsNone(elp.token_logprobs[0])
        self.assertEqual(len(elp.tokens), out.usage.prompt_tokens + 2)

    def test_logprobs_chat_format(self):
        out = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
            temperature=0, logprobs=True, top_logprobs=2)
        content = out.choices[0].logprobs.content
        self.assertEqual(len(content), 4)
        for entry in content:
            self.assertLessEqual(entry.logprob, 0)
            self.assertEqual(bytes(entry.bytes).decode(errors="replace"), entry.token)
            self.assertEqual(len(entry.top_logprobs), 2)
            self.assertGreaterEqual(entry.top_logprobs[0].logprob, entry.top_logprobs[1].logprob)
        streamed = []
        for chunk in self.client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                temperature=0, logprobs=True, top_logprobs=2, stream=True):
            if chunk.choices and chunk.choices[0].logprobs:
                streamed += chunk.choices[0].logprobs.content
        self.assertEqual([e.token for e in streamed], [e.token for e in content])
        none = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        self.assertIsNone(none.choices[0].logprobs)

    # ---- tokenize / detokenize (vLLM's shapes)
    def test_tokenize_and_detokenize(self):
        status, _, body = request(self.server.http_port, "POST", "/tokenize",
                                  {"model": MODEL, "prompt": PROMPT, "return_token_strs": True})
        self.assertEqual(status, 200)
        t = json.loads(body)
        self.assertEqual(t["count"], len(t["tokens"]))
        self.assertEqual(t["max_model_len"], 512)
        self.assertEqual(len(t["token_strs"]), t["count"])
        status, _, body = request(self.server.http_port, "POST", "/detokenize",
                                  {"model": MODEL, "tokens": t["tokens"]})
        self.assertEqual((status, json.loads(body)["prompt"]), (200, PROMPT))
        status, _, body = request(self.server.http_port, "POST", "/tokenize",
                                  {"messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(status, 200)
        self.assertGreater(json.loads(body)["count"], 3)

    # ---- errors
    def assertError(self, status, path, body, param=None, message=None, headers=None):
        got, hdrs, raw = request(self.server.http_port, "POST" if body is not None else "GET", path,
                                 body, headers)
        self.assertEqual(got, status, raw)
        err = json.loads(raw)["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"})
        if param is not None:
            self.assertEqual(err["param"], param, err)
        if message is not None:
            self.assertIn(message, err["message"])
        return hdrs, err

    def test_every_bad_request_is_400_naming_the_field(self):
        c, ch = "/v1/completions", "/v1/chat/completions"
        msgs = [{"role": "user", "content": "hi"}]
        cases = [
            (c, {"prompt": PROMPT, "temperature": -1}, "temperature", "[0, 100]"),
            (c, {"prompt": PROMPT, "top_p": 0}, "top_p", "(0, 1]"),
            (c, {"prompt": PROMPT, "n": 17}, "n", "[1, 16]"),
            (c, {"prompt": PROMPT, "max_tokens": 100000}, "max_tokens", "at most"),
            (c, {"prompt": PROMPT, "logprobs": 21}, "logprobs", "[0, 20]"),
            (c, {"prompt": PROMPT, "suffix": "x"}, "suffix", "not supported"),
            (c, {"prompt": PROMPT, "best_of": 3}, "best_of", None),
            (c, {"prompt": PROMPT, "stop": 5}, "stop", None),
            (c, {"prompt": PROMPT, "logit_bias": {"x": 1}}, "logit_bias", None),
            (c, {"prompt": PROMPT, "logit_bias": {"5": 1000}}, "logit_bias", "[-100, 100]"),
            (c, {"prompt": PROMPT, "stream_options": {"include_usage": True}}, "stream_options", None),
            (c, {"prompt": [1, 999999]}, "prompt[1]", "vocabulary"),
            (c, {"prompt": []}, "prompt", None),
            (c, {"max_tokens": 3}, "prompt", "required"),
            (c, {"prompt": "x " * 600}, "prompt", "max_model_len"),
            (ch, {"messages": msgs, "response_format": {"type": "xml"}}, "response_format.type",
             "must be one of"),
            (ch, {"messages": msgs, "response_format": {"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"type": "array", "uniqueItems": True}}}},
             "response_format.json_schema.schema", "uniqueItems"),
            (ch, {"messages": msgs, "response_format": {"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"type": "object", "properties": 5}}}},
             "response_format.json_schema.schema", None),
            (ch, {"messages": msgs, "top_logprobs": 2}, "top_logprobs", "logprobs"),
            (ch, {"messages": msgs, "logprobs": True, "top_logprobs": 21}, "top_logprobs", None),
            (ch, {"messages": msgs, "max_completion_tokens": 0}, "max_completion_tokens", None),
            (ch, {"messages": []}, "messages", None),
            (ch, {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", None),
            (ch, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
             "messages[0].content[0].type", None),
            (ch, {"messages": msgs, "tool_choice": "required", "tools": []}, "tool_choice", None),
            (ch, {"messages": msgs, "functions": []}, "functions", None),
        ]
        for path, body, param, message in cases:
            with self.subTest(body=body):
                self.assertError(400, path, body, param, message)
        with self.assertRaises(openai.BadRequestError) as e:
            self.client.completions.create(model=MODEL, prompt=PROMPT, temperature=-1)
        self.assertEqual(e.exception.status_code, 400)
        self.assertEqual(e.exception.body["param"], "temperature")
        self.assertError(400, c, b"{not json", None, "JSON")
        self.assertHealthy()

    def test_response_format_json_object_and_json_schema(self):
        msgs = [{"role": "user", "content": "Describe a person as JSON."}]
        for temperature, n in [(0.0, 1), (1.0, 4)]:
            out = self.client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=60, n=n,
                                                      temperature=temperature, seed=3,
                                                      response_format={"type": "json_object"})
            for choice in out.choices:
                if choice.finish_reason == "stop":
                    self.assertIsInstance(json.loads(choice.message.content), dict, choice.message.content)
        schema = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
                  "properties": {"name": {"type": "string", "maxLength": 8},
                                 "age": {"type": "integer", "minimum": 0, "maximum": 99},
                                 "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}}}
        finished = 0
        for temperature, n in [(0.0, 1), (1.0, 6)]:
            out = self.client.chat.completions.create(
                model=MODEL, messages=msgs, max_tokens=80, n=n, temperature=temperature, seed=5,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "person", "schema": schema, "strict": True}})
            for choice in out.choices:
                self.assertIn(choice.finish_reason, ("stop", "length"))
                if choice.finish_reason != "stop":
                    continue
                finished += 1
                value = json.loads(choice.message.content)
                self.assertEqual(set(value) - {"name", "age", "tags"}, set(), value)
                self.assertIsInstance(value["name"], str)
                self.assertLessEqual(len(value["name"]), 8)
                self.assertIsInstance(value["age"], int)
                self.assertTrue(0 <= value["age"] <= 99, value)
                self.assertTrue(all(t in ("a", "b") for t in value.get("tags", [])), value)
        self.assertGreater(finished, 0)
        # Streaming carries the same constrained text.
        chunks = self.client.chat.completions.create(
            model=MODEL, messages=msgs, max_tokens=60, temperature=0, stream=True,
            response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        whole = self.client.chat.completions.create(
            model=MODEL, messages=msgs, max_tokens=60, temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertHealthy()

    def test_other_error_statuses(self):
        self.assertError(404, "/v1/completions", {"model": "gpt-4", "prompt": PROMPT}, "model")
        self.assertError(404, "/v1/nope", None)
        self.assertError(405, "/v1/completions", None)
        _, err = self.assertError(413, "/v1/completions",
                                  {"prompt": "x" * 200000}, None, "--max-message-bytes")
        with self.assertRaises(openai.NotFoundError):
            self.client.completions.create(model="other", prompt=PROMPT)
        self.assertHealthy()

    # ---- a client that goes away
    def test_disconnect_aborts_and_frees_every_block(self):
        before = self.server.wait_idle()
        aborted = before.get('moeserve_requests_total{finish_reason="abort"}', 0)
        sock = socket.create_connection(("127.0.0.1", self.server.http_port))
        body = json.dumps({"model": MODEL, "prompt": PROMPT, "max_tokens": 450, "stream": True,
                           "n": 4, "temperature": 1.0, "ignore_eos": True}).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        got = b""
        while got.count(b"data: ") < 3:
            got += sock.recv(4096)
        sock.close()
        after = self.server.wait_idle()
        self.assertEqual(after["moeserve_kv_cache_blocks_used"], 0)
        self.assertEqual(after["moeserve_requests_running"], 0)
        self.assertEqual(after['moeserve_requests_total{finish_reason="abort"}'], aborted + 1)
        self.assertLess(after["moeserve_generation_tokens_total"] -
                        before["moeserve_generation_tokens_total"], 4 * 450)
        self.assertHealthy()


class LimitsTest(unittest.TestCase):
    """Servers with small limits: queue full, slow readers, keep-alive comments, keys, drain."""

    def test_queue_full_is_429_with_retry_after(self):
        server = Server(ARGS.moeserve, os.path.join(ARGS.source, "models", "default"),
                        "--max-queued-requests", "1")
        try:
            client = openai.OpenAI(base_url=server.base_url(), api_key="x", max_retries=0)
            with self.assertRaises(openai.RateLimitError) as e:  # n=2 samples > 1 queued
                client.completions.create(model="default", prompt=PROMPT, n=2, max_tokens=2)
            self.assertEqual(e.exception.status_code, 429)
            self.assertIn("max_queued_requests", e.exception.body["message"])
            self.assertEqual(e.exception.response.headers["retry-after"], "1")
            self.assertEqual(len(client.completions.create(model="default", prompt=PROMPT,
                                                           max_tokens=2).choices), 1)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_keepalive_comments_while_queued(self):
        server = Server(ARGS.moeserve, os.path.join(ARGS.source, "models", "default"),
                        "--max-num-seqs", "1", "--sse-keepalive", "0.1")
        try:
            hog = threading.Thread(target=lambda: request(
                server.http_port, "POST", "/v1/completions",
                {"prompt": PROMPT, "max_tokens": 450, "n": 8, "ignore_eos": True}))
            hog.start()
            deadline = time.time() + 30
            while server.metrics()["moeserve_requests_running"] == 0 and time.time() < deadline:
                time.sleep(0.01)
            raw, status, _ = sse_lines(server.http_port, "/v1/completions",
                                       {"prompt": PROMPT, "max_tokens": 3, "stream": True})
            hog.join()
            self.assertEqual(status, 200)
            first_data = raw.index("data: ")
            self.assertIn(": keep-alive\n\n", raw[:first_data])
            self.assertEqual(parse_sse(raw)[-1], "[DONE]")
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_client_that_stops_reading_is_aborted(self):
        server = Server(ARGS.moeserve, os.path.join(ARGS.source, "models", "default"),
                        "--http-max-write-buffer", "8192")
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.http_port))
            body = json.dumps({"prompt": PROMPT, "max_tokens": 450, "n": 16, "stream": True,
                               "logprobs": 20, "ignore_eos": True, "temperature": 1.0}).encode()
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\n\r\n" + body)
            deadline = time.time() + 60
            aborted = 0
            while time.time() < deadline and not aborted:
                time.sleep(0.1)
                aborted = server.metrics().get('moeserve_requests_total{finish_reason="abort"}', 0)
            self.assertEqual(aborted, 1, "the stalled stream was not aborted")
            m = server.wait_idle()
            self.assertEqual(m["moeserve_kv_cache_blocks_used"], 0)
            self.assertLess(m["moeserve_generation_tokens_total"], 16 * 450)
            sock.close()
            self.assertEqual(request(server.http_port, "GET", "/health")[0], 200)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_api_keys(self):
        server = Server(ARGS.moeserve, os.path.join(ARGS.source, "models", "default"),
                        api_key="s3cret")
        try:
            bad = openai.OpenAI(base_url=server.base_url(), api_key="wrong", max_retries=0)
            with self.assertRaises(openai.AuthenticationError) as e:
                bad.models.list()
            self.assertEqual(e.exception.status_code, 401)
            status, _, _ = request(server.http_port, "POST", "/v1/completions", {"prompt": PROMPT})
            self.assertEqual(status, 401)
            good = openai.OpenAI(base_url=server.base_url(), api_key="s3cret", max_retries=0)
            self.assertEqual(good.models.list().data[0].id, "default")
            self.assertEqual(request(server.http_port, "GET", "/health")[0], 200)
            self.assertEqual(request(server.http_port, "GET", "/metrics")[0], 200)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_drain_answers_503_and_finishes_what_runs(self):
        server = Server(ARGS.moeserve, os.path.join(ARGS.source, "models", "default"),
                        "--max-num-seqs", "1", "--shutdown-timeout", "30")
        client = openai.OpenAI(base_url=server.base_url(), api_key="x", max_retries=0)
        result = {}

        def long_request():
            out = client.completions.create(model="default", prompt=PROMPT, max_tokens=450, n=16,
                                            extra_body={"ignore_eos": True})
            result["tokens"] = out.usage.completion_tokens

        t = threading.Thread(target=long_request)
        t.start()
        deadline = time.time() + 30
        while server.metrics()["moeserve_requests_running"] == 0 and time.time() < deadline:
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGTERM)
        # /health turns 503 at once (it never waits for the engine) ...
        while request(server.http_port, "GET", "/health")[0] != 503 and time.time() < deadline:
            time.sleep(0.01)
        self.assertEqual(request(server.http_port, "GET", "/health")[0], 503)
        # ... and new requests are refused while the running one goes on.
        status, headers, body = request(server.http_port, "POST", "/v1/completions",
                                        {"prompt": PROMPT, "max_tokens": 1})
        self.assertEqual(status, 503, body)
        error = json.loads(body)["error"]
        self.assertEqual(error["type"], "server_error")
        self.assertIn("draining", error["message"])
        self.assertEqual(headers["retry-after"], "1")
        self.assertGreater(server.metrics()["moeserve_requests_running"], 0)
        t.join()
        self.assertEqual(result.get("tokens"), 16 * 450)
        self.assertEqual(server.proc.wait(60), 0)

    def test_https_with_the_grpc_certificate(self):
        if subprocess.run(["sh", "-c", "command -v openssl"], capture_output=True).returncode:
            self.skipTest("openssl is needed to make a test certificate")
        tmp = tempfile.mkdtemp(prefix="openai_tls")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{tmp}/key.pem",
                        "-out", f"{tmp}/cert.pem", "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        server = Server(ARGS.moeserve, os.path.join(ARGS.source, "models", "default"),
                        tls=(f"{tmp}/cert.pem", f"{tmp}/key.pem"))
        try:
            client = openai.OpenAI(base_url=server.base_url("https"), api_key="x", max_retries=0,
                                   http_client=openai.DefaultHttpxClient(verify=f"{tmp}/cert.pem"))
            out = client.completions.create(model="default", prompt=PROMPT, max_tokens=3)
            self.assertEqual(out.usage.completion_tokens, 3)
            chunks = list(client.completions.create(model="default", prompt=PROMPT, max_tokens=3,
                                                    stream=True))
            self.assertGreaterEqual(len(chunks), 1)
            with self.assertRaises(OSError):  # plain HTTP on the TLS port
                status, _, _ = request(server.http_port, "GET", "/health", timeout=5)
                if status != 200:
                    raise OSError(status)
        finally:
            self.assertEqual(server.stop(), 0)


def main():
    global ARGS
    ARGS, rest = parse_args("--moeserve", "--moeserve-cli", "--source")
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
