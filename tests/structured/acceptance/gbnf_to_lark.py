"""GBNF (llama.cpp's grammar format) converted to a lark grammar, so that an independent parser
(lark's Earley) can check what the server generated. Written for this test: a small recursive-descent
reader of GBNF; rules become lark rules, literals lark strings, character classes one-character
regex terminals, repetitions lark's `~ m..n`."""

import json
import re


def _class_char(c):
    """A code point inside a regex character class, escaped so that the regex is one line."""
    if c.isascii() and c.isalnum():
        return c
    if 0x20 < ord(c) < 0x7F:  # punctuation: a backslash escape (lark turns \\uXXXX into the raw char)
        return "\\" + c
    if ord(c) <= 0xFFFF:
        return f"\\u{ord(c):04x}"
    return f"\\U{ord(c):08x}"


class _Reader:
    def __init__(self, text):
        self.s = text
        self.i = 0
        self.terminals = {}

    def space(self, newlines):
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t" or (newlines and c in "\r\n"):
                self.i += 1
            elif c == "#":
                while self.i < len(self.s) and self.s[self.i] not in "\r\n":
                    self.i += 1
            else:
                break

    def name(self):
        m = re.compile(r"[A-Za-z0-9_-]+").match(self.s, self.i)
        if not m:
            raise ValueError(f"expected a name at {self.i}")
        self.i = m.end()
        return m.group(0)

    def char(self):
        c = self.s[self.i]
        if c != "\\":
            self.i += 1
            return c
        e = self.s[self.i + 1]
        self.i += 2
        if e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            v = int(self.s[self.i:self.i + n], 16)
            self.i += n
            return chr(v)
        return {"n": "\n", "r": "\r", "t": "\t"}.get(e, e)

    def literal(self):
        self.i += 1
        out = []
        while self.s[self.i] != '"':
            out.append(self.char())
        self.i += 1
        return "".join(out)

    def char_class(self):
        self.i += 1
        negate = self.s[self.i] == "^"
        if negate:
            self.i += 1
        items = []
        while self.s[self.i] != "]":
            lo = self.char()
            if self.s[self.i] == "-" and self.s[self.i + 1] != "]":
                self.i += 1
                items.append((lo, self.char()))
            else:
                items.append((lo, lo))
        self.i += 1
        body = "".join(_class_char(a) if a == b else f"{_class_char(a)}-{_class_char(b)}" for a, b in items)
        return ("^" if negate else "") + body

    def terminal(self, regex):
        if regex not in self.terminals:
            self.terminals[regex] = f"T{len(self.terminals)}"
        return self.terminals[regex]

    def alternatives(self, nested):
        alts = [self.sequence(nested)]
        while self.i < len(self.s) and self.s[self.i] == "|":
            self.i += 1
            self.space(True)
            alts.append(self.sequence(nested))
        return "(" + " | ".join(a if a else "_empty" for a in alts) + ")"

    def sequence(self, nested):
        items = []
        while True:
            self.space(nested)
            if self.i >= len(self.s):
                break
            c = self.s[self.i]
            if c == '"':
                lit = self.literal()
                item = json.dumps(lit) if lit else "_empty"
            elif c == "[":
                item = self.terminal("[" + self.char_class() + "]")
            elif c == ".":
                self.i += 1
                item = self.terminal("(?s:.)")  # any code point
            elif c == "(":
                self.i += 1
                self.space(True)
                item = self.alternatives(True)
                self.space(True)
                self.i += 1  # )
            elif re.match(r"[A-Za-z0-9_-]", c):
                item = "r_" + self.name().replace("-", "_").lower()
            else:
                break
            item = self.postfix(item)
            items.append(item)
        return " ".join(items)

    def postfix(self, item):
        while True:
            save = self.i
            self.space(False)
            if self.i >= len(self.s):
                self.i = save
                return item
            c = self.s[self.i]
            if c in "*+?":
                self.i += 1
                item = f"({item}){c}" if c != "?" else f"[{item}]"
            elif c == "{":
                m = re.compile(r"\{\s*(\d*)\s*(,?)\s*(\d*)\s*\}").match(self.s, self.i)
                self.i = m.end()
                lo = int(m.group(1) or 0)
                if not m.group(2):
                    hi = lo
                else:
                    hi = int(m.group(3)) if m.group(3) else None
                if hi is None:
                    item = f"({item}) ~ {lo} ({item})*" if lo > 0 else f"({item})*"
                elif hi == 0:
                    item = "_empty"
                else:
                    item = f"(({item}) ~ {lo}..{hi})" if lo > 0 else f"[({item}) ~ 1..{hi}]"
            else:
                self.i = save
                return item


def gbnf_to_lark(text):
    r = _Reader(text)
    rules = []
    r.space(True)
    while r.i < len(r.s):
        name = "r_" + r.name().replace("-", "_").lower()
        r.space(False)
        assert r.s.startswith("::=", r.i), f"expected ::= at {r.i}"
        r.i += 3
        r.space(True)
        rules.append(f"{name}: {r.alternatives(False)}")
        r.space(True)
    lines = ["start: r_root", "_empty:"]
    lines += rules
    lines += [f"{t}: /{regex}/" for regex, t in r.terminals.items()]
    return "\n".join(lines) + "\n"
