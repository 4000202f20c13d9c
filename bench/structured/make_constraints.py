#!/usr/bin/env python3
"""Writes the structured-output benchmark's constraints as JSONL (moeserve-structured-bench's
--constraints format) to stdout: the acceptance test's JSON Schemas and regexes, and any JSON
object."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "structured",
                                "acceptance"))
from schemas import REGEXES, SCHEMAS  # noqa: E402

for name, schema in SCHEMAS:
    print(json.dumps({"name": name, "kind": "json_schema", "value": schema}))
for i, pattern in enumerate(REGEXES):
    print(json.dumps({"name": f"regex-{i}", "kind": "regex", "value": pattern}))
print(json.dumps({"name": "json_object", "kind": "json_object"}))
