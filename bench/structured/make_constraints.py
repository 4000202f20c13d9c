#!/usr/bin/env python3
"""Writes the structured-output benchmark's constraints as JSONL (moeserve-structured-bench's
--constraints format) to stdout: the acceptance test's JSON Schemas and regexes, any JSON object,
and triggered tool calls (tool_choice "auto" with strict tools, as the OpenAI layer builds them for
Hermes and DeepSeek-V3 markup) over four tool signatures. A triggered line's "prefer" is the text
that opens a call: walks pick it now and then, so that they time masks inside calls as well as in
free text."""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "structured",
                                "acceptance"))
from schemas import REGEXES, SCHEMAS  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--only", help="only the constraints whose names match this regex")
ONLY = parser.parse_args().only


def emit(line):
    if ONLY is None or re.search(ONLY, line["name"]):
        print(json.dumps(line, ensure_ascii=False))


for name, schema in SCHEMAS:
    emit({"name": name, "kind": "json_schema", "value": schema})
for i, pattern in enumerate(REGEXES):
    emit({"name": f"regex-{i}", "kind": "regex", "value": pattern})
emit({"name": "json_object", "kind": "json_object"})

TOOL_SCHEMAS = [
    {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
     "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 40},
                    "unit": {"enum": ["celsius", "fahrenheit"]}}},
    {"type": "object", "additionalProperties": False, "required": ["restaurant", "people", "time"],
     "properties": {"restaurant": {"type": "string"}, "people": {"type": "integer", "minimum": 1, "maximum": 12},
                    "time": {"type": "string", "format": "time"}, "notes": {"type": ["string", "null"]}}},
    {"type": "object", "additionalProperties": False, "required": ["query"],
     "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1},
                    "filters": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                           "properties": {"field": {"type": "string"},
                                                                          "value": {"type": "string"}}}}}},
    {"type": "object", "properties": {}, "additionalProperties": False},
]
NAMES = ["get_weather", "book_table", "search", "no_arguments"]
hermes_calls = [{"before": "\n{\"name\": " + json.dumps(n) + ", \"arguments\": ", "arguments": s,
                 "after": "}\n</tool_call>"} for n, s in zip(NAMES, TOOL_SCHEMAS)]
emit({"name": "triggered-hermes", "kind": "triggered", "prefer": "<tool_call>",
      "value": {"trigger": "<tool_call>", "tool_calls": {"max_calls": 1, "calls": hermes_calls}}})
SEP = "<｜tool▁sep｜>"
deepseek_calls = [{"before": "<｜tool▁call▁begin｜>function" + SEP + n + "\n```json\n", "arguments": s,
                   "after": "\n```<｜tool▁call▁end｜>"} for n, s in zip(NAMES, TOOL_SCHEMAS)]
emit({"name": "triggered-deepseek", "kind": "triggered", "prefer": "<｜tool▁calls▁begin｜>",
      "value": {"trigger": "<｜tool▁calls▁begin｜>", "avoid": ["<｜tool▁call▁begin｜>"], "max_triggers": 1,
                "tool_calls": {"end": "<｜tool▁calls▁end｜>", "separator": "\n", "calls": deepseek_calls}}})
