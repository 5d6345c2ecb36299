"""JSON Schema `pattern` regexes as GBNF, for the text inside a JSON string.

The regex dialect is the common core of ECMA-262 that schemas use: literals and escapes,
`.`, classes (`[a-z]`, `[^"]`, `\\d \\w \\s` and their negations), groups (`(...)`, `(?:...)`),
alternation and the quantifiers `* + ? {m} {m,} {m,n}` (lazy forms match the same strings).
Lookarounds, backreferences and word boundaries have no GBNF form and are refused. As JSON
Schema says, a pattern matches anywhere in the string unless it is anchored with `^` and `$`.

What the regex matches are characters, but a JSON string spells some of them as escapes: a quote
is `\\"`, a backslash `\\\\`, a newline `\\n`. The grammar writes those spellings, so that the
answer is valid JSON whose decoded string matches the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f"}
_UNRAW = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0x7F, 0x7F)]  # never raw in JSON strings
_DIGIT = [(0x30, 0x39)]
_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE = [(0x09, 0x0D), (0x20, 0x20)]
_CLASSES = {"d": (_DIGIT, False), "D": (_DIGIT, True), "w": (_WORD, False),
            "W": (_WORD, True), "s": (_SPACE, False), "S": (_SPACE, True)}
_CHARS = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v", "0": "\0"}
MAX_CODE_POINT = 0x10FFFF
ANY_ESCAPE = '"\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})'  # any JSON string escape


class PatternError(ValueError):
    """A pattern this converter cannot turn into a grammar, or one past its bounds."""


# Repetitions inside repetitions match one text in many ways, and llama.cpp follows every way
# at once: (a{1,50}){1,50} stalls it for minutes on one token. The product of nested repetition
# counts is bounded instead (30 x 30 costs it a few milliseconds a token).
MAX_NESTED_REPEAT = 1_000
UNBOUNDED_WEIGHT = 20  # what `*` and `+` count as: (a*){1,50} is fine, (a*){1,1000} is not


@dataclass
class _Limits:
    max_repeat: int
    max_min_repeat: int
    cost: int = 0  # what llama.cpp expands the repetitions to, added up


def pattern_rule(pattern: str, char_rule: str, max_repeat: int, max_min_repeat: int
                 ) -> tuple[str, int]:
    """(GBNF for the JSON-string text the pattern matches, what its repetitions cost);
    `char_rule` names the rule of one JSON string character."""
    limits = _Limits(max_repeat, max_min_repeat)
    parser = _Parser(pattern, char_rule, limits)
    anchored_start = pattern.startswith("^")
    anchored_end = pattern.endswith("$") and not pattern.endswith("\\$")
    parser.pos = int(anchored_start)
    parser.end = len(pattern) - int(anchored_end)
    body, _ = parser.alternation()
    if parser.pos != parser.end:
        raise PatternError(f"unexpected {pattern[parser.pos]!r} at position {parser.pos}")
    anywhere = f"{char_rule}*"
    return " ".join(part for part in (
        "" if anchored_start else anywhere, f"({body})",
        "" if anchored_end else anywhere) if part), limits.cost


class _Parser:
    def __init__(self, pattern: str, char_rule: str, limits: _Limits):
        self.pattern = pattern
        self.char_rule = char_rule
        self.limits = limits
        self.pos = 0
        self.end = len(pattern)

    def _peek(self, ahead: int = 0) -> str:
        at = self.pos + ahead
        return self.pattern[at] if at < self.end else ""

    def _take(self) -> str:
        char = self._peek()
        if not char:
            raise PatternError("the pattern ends too early")
        self.pos += 1
        return char

    # Each part returns (GBNF, the product of the repetition counts nested in it).

    def alternation(self) -> tuple[str, int]:
        options = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            options.append(self._sequence())
        return (" | ".join(text or '""' for text, _ in options),
                max(nested for _, nested in options))

    def _sequence(self) -> tuple[str, int]:
        parts = []
        while self._peek() and self._peek() not in "|)":
            parts.append(self._quantified(*self._atom()))
        return " ".join(text for text, _ in parts), max([1] + [n for _, n in parts])

    def _atom(self) -> tuple[str, int]:
        char = self._take()
        if char == "(":
            if self._peek() == "?":
                if self._peek(1) != ":":
                    raise PatternError("lookarounds and named groups are not supported")
                self.pos += 2
            inner, nested = self.alternation()
            if self._take() != ")":
                raise PatternError("a group is not closed")
            return f"({inner or chr(34) * 2})", nested
        return self._single(char), 1

    def _single(self, char: str) -> str:
        """An atom that is one character (or one of a class of them)."""
        if char == "[":
            return self._class()
        if char == ".":
            return self.char_rule
        if char == "\\":
            return self._escape()
        if char in "^$":
            raise PatternError("^ and $ are supported only at the start and end of the pattern")
        if char in "*+?{":
            raise PatternError(f"{char!r} at position {self.pos - 1} has nothing to repeat")
        return _spelled(char)

    def _escape(self) -> str:
        char = self._take()
        if char in _CLASSES:
            ranges, negated = _CLASSES[char]
            return _class_rule(ranges, negated, self.char_rule)
        if char.isdigit() and char != "0" or char in "bBk":
            raise PatternError("backreferences and word boundaries are not supported")
        return _spelled(self._escaped_char(char))

    def _escaped_char(self, char: str) -> str:
        if char in _CHARS:
            return _CHARS[char]
        if char in "xu":
            digits = 2 if char == "x" else 4
            text = self.pattern[self.pos:self.pos + digits]
            if len(text) != digits or any(c not in "0123456789abcdefABCDEF" for c in text):
                raise PatternError(f"\\{char} needs {digits} hex digits")
            self.pos += digits
            return chr(int(text, 16))
        return char

    def _class(self) -> str:
        negated = self._peek() == "^"
        self.pos += negated
        ranges = []
        first = True
        while first or self._peek() != "]":
            first = False
            char = self._take()
            if char == "\\":
                escaped = self._take()
                if escaped in _CLASSES:
                    inner, inner_negated = _CLASSES[escaped]
                    ranges += _complement(inner) if inner_negated else inner
                    continue
                char = self._escaped_char(escaped)
            low = ord(char)
            if self._peek() == "-" and self._peek(1) not in ("]", ""):
                self.pos += 1
                high_char = self._take()
                if high_char == "\\":
                    high_char = self._escaped_char(self._take())
                if ord(high_char) < low:
                    raise PatternError(f"the range {char}-{high_char} runs backwards")
                ranges.append((low, ord(high_char)))
            else:
                ranges.append((low, low))
        self.pos += 1
        return _class_rule(ranges, negated, self.char_rule)

    def _quantified(self, atom: str, nested: int) -> tuple[str, int]:
        char = self._peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{" and self._is_counted():
            low, high = self._counts()
        else:
            return atom, nested
        if self._peek() == "?":  # lazy: the same strings
            self.pos += 1
        nested *= UNBOUNDED_WEIGHT if high is None else max(high, 1)
        if nested > MAX_NESTED_REPEAT:
            raise PatternError(f"repetitions nested in repetitions allow {nested} ways through; "
                               f"this server allows {MAX_NESTED_REPEAT}")
        return atom + self._repetition(low, high), nested

    def _is_counted(self) -> bool:
        closing = self.pattern.find("}", self.pos)
        inner = self.pattern[self.pos + 1:closing] if closing > 0 else ""
        return bool(inner) and all(c.isdigit() or c == "," for c in inner) and inner[0] != ","

    def _counts(self) -> tuple[int, int | None]:
        closing = self.pattern.index("}", self.pos)
        low_text, comma, high_text = self.pattern[self.pos + 1:closing].partition(",")
        self.pos = closing + 1
        low = int(low_text)
        high = (int(high_text) if high_text else None) if comma else low
        if high is not None and high < low:
            raise PatternError(f"{{{low},{high}}} runs backwards")
        return low, high

    def _repetition(self, low: int, high: int | None) -> str:
        limits = self.limits
        if low > limits.max_min_repeat or (high or 0) > limits.max_repeat:
            raise PatternError(f"a repetition of {high or low} is more than the "
                               f"{limits.max_repeat} this server allows")
        limits.cost += (high if high is not None else low) + 1
        return repeat(low, high)


def repeat(low: int, high: int | None) -> str:
    """The GBNF quantifier for `low` to `high` (None: no end) repetitions."""
    if high is None:
        return "*" if low == 0 else ("+" if low == 1 else f"{{{low},}}")
    if (low, high) == (0, 1):
        return "?"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _spelled(char: str) -> str:
    """One character as the JSON string text that spells it."""
    text = _JSON_ESCAPES.get(char)
    if text is None:
        text = f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _class_rule(ranges: list[tuple[int, int]], negated: bool, char_rule: str) -> str:
    """A character class as GBNF over JSON string text: the characters JSON writes raw as a
    GBNF class, and those it must escape as their escapes."""
    chosen = _merge(_complement(ranges) if negated else ranges)
    raw = _subtract(chosen, _UNRAW)
    escaped = [code for low, high in _intersect(chosen, _UNRAW) for code in range(low, high + 1)]
    options = [_gbnf_class(raw)] if raw else []
    if len(escaped) > 16:  # most of the control characters: any escape will do
        options.append(ANY_ESCAPE)
    else:
        options += [_spelled(chr(code)) for code in escaped]
    if not options:
        raise PatternError("a character class matches no character")
    return options[0] if len(options) == 1 else "(" + " | ".join(options) + ")"


def _gbnf_class(ranges: list[tuple[int, int]]) -> str:
    def char(code: int) -> str:
        return chr(code) if chr(code).isalnum() and code < 0x80 else (
            f"\\x{code:02X}" if code < 0x100 else f"\\u{code:04X}" if code < 0x10000
            else f"\\U{code:08X}")
    return "[" + "".join(char(low) if low == high else f"{char(low)}-{char(high)}"
                         for low, high in ranges) + "]"


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    result, start = [], 0
    for low, high in _merge(ranges):
        if low > start:
            result.append((start, low - 1))
        start = high + 1
    if start <= MAX_CODE_POINT:
        result.append((start, MAX_CODE_POINT))
    return result


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(max(x, y), min(p, q)) for x, p in a for y, q in b if max(x, y) <= min(p, q)]


def _subtract(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return _intersect(a, _complement(b))
