"""GBNF grammars that hold sampling to a shape: any JSON object, JSON valid against a JSON
Schema, or either of those or plain text.

The schema converter follows llama.cpp's own (common/json-schema-to-grammar): strings hold only
what JSON allows unescaped (no control characters), repetitions are GBNF's `{m,n}` (which
llama.cpp expands without recursion, however large), whitespace is at most one space (so a small
model cannot wander off into it), and objects get exactly their declared properties, required
ones first. What a grammar may cost is bounded before it is handed to llama.cpp: repetition
counts, enum sizes, nesting and the grammar's size (what llama.cpp would expand it to); past a
bound, or on what cannot be enforced, SchemaError says where in the schema.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from .errors import InvalidGrammar
from .patterns import ANY_ESCAPE, PatternError, pattern_rule, repeat

MAX_REPEAT = 10_000  # the largest maxLength / maxItems / {m,n}
MAX_MIN_REPEAT = 2_000  # the largest minLength / minItems (llama.cpp refuses more)
MAX_ENUM = 1_000  # values of one enum
MAX_DEPTH = 32  # schemas inside schemas
MAX_COST = 200_000  # the grammar's bytes plus every repetition's expansion in llama.cpp
MAX_DIGITS = 16  # integers and fractions, as llama.cpp's converter bounds them

SPACE = '" "?'
# A character of a JSON string: anything but a quote, a backslash or a control character, or an
# escape. llama-cpp-python's converter lets raw control characters through.
CHAR = r'[^"\\\x7F\x00-\x1F] | ' + ANY_ESCAPE

PRIMITIVES = {
    "space": SPACE,
    "char": CHAR,
    "string": r'"\"" char* "\"" space',
    "boolean": '("true" | "false") space',
    "null": '"null" space',
    "integral-part": "[0] | [1-9] [0-9]{0,15}",
    "decimal-part": "[0-9]{1,16}",
    "integer": '"-"? integral-part space',
    "number": '"-"? integral-part ("." decimal-part)? ([eE] [-+]? integral-part)? space',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" space (string ":" space value ("," space string ":" space value)*)? "}" space',
    "array": '"[" space (value ("," space value)*)? "]" space',
    "date": '[0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [1-2] [0-9] | "3" [0-1])',
    "time": '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{3})? '
            '("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])',
    "date-time": 'date "T" time',
    "uuid": '[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" '
            '[0-9a-fA-F]{12}',
}
_DEPENDS = {"string": ["char", "space"], "boolean": ["space"], "null": ["space"],
            "integer": ["integral-part", "space"],
            "number": ["integral-part", "decimal-part", "space"],
            "value": ["object", "array", "string", "number", "boolean", "null"],
            "object": ["string", "value", "space"], "array": ["value", "space"],
            "date-time": ["date", "time"]}
_FORMATS = ("date", "time", "date-time", "uuid")
_VALUES = ("const", "enum", "default", "examples")  # keywords whose values are data, not schemas
_RULE_NAME = re.compile(r"[^A-Za-z0-9-]+")
_ROOT_RULE = re.compile(r"^root ::=", re.M)
_PLAIN_TEXT = "plain-text ::= [^{ \\t\\n] [^\\x00]*\n"


class SchemaError(InvalidGrammar):
    """A schema that cannot be enforced, or would cost more than allowed; `where` is the path in
    the schema, such as `properties.name.maxLength`."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(f"{message} (at {where})" if where else message)
        self.where = where


def json_object() -> str:
    """Any JSON object."""
    return _Converter({}).grammar_for_primitive("object")


def json_schema(schema, property_order: list[str] | None = None) -> str:
    """JSON that validates against `schema`; properties named in `property_order` come first."""
    return _Converter(schema, property_order).grammar()


def text_only() -> str:
    """Plain text that does not start with `{` (the tool-call form's first character)."""
    return "root ::= plain-text\n" + _PLAIN_TEXT


def json_or_text(json_grammar: str) -> str:
    """Either JSON matching `json_grammar` (which must start with `{`) or plain text that does
    not start with `{`: lets a model answer in words or in the structured form, never in
    broken JSON."""
    return (_ROOT_RULE.sub("structured ::=", json_grammar, count=1)
            + "\nroot ::= structured | plain-text\n" + _PLAIN_TEXT)


class GrammarBuilder:
    """A grammar put together from GBNF rules of one's own and JSON Schemas, each schema's
    rules kept apart from the others' (its $refs resolve within it)."""

    def __init__(self):
        self._converter = _Converter({})
        self._converter._primitive("space")

    def json(self, schema, name: str) -> str:
        """A rule matching JSON valid against `schema`; its name (near `name`)."""
        return self._converter.embedded(schema, name)

    def rule(self, name: str, body: str) -> str:
        return self._converter._add(name, body)

    def build(self, root: str) -> str:
        self._converter.rules["root"] = root
        return self._converter._finish()


def rebased(schema, base: str):
    """`schema` with its local references (`#/...`) pointing into it from `base`, for
    embedding it in another schema at the JSON pointer `base`."""
    if isinstance(schema, list):
        return [rebased(item, base) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {key: base + value[1:] if key == "$ref" and isinstance(value, str)
            and value.startswith("#") else value if key in _VALUES else rebased(value, base)
            for key, value in schema.items()}


def literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


@dataclass
class _Converter:
    root: object
    property_order: list[str] | None = None
    rules: dict[str, str] = field(default_factory=dict)
    cost: int = 0
    _refs: dict[str, str] = field(default_factory=dict)  # $ref -> the rule that holds it

    def grammar(self) -> str:
        self._primitive("space")  # nearly every rule ends with it
        expression = self._visit(self.root, "root", "", 0, frozenset())
        if expression != "root":
            self.rules["root"] = expression
        return self._finish()

    def embedded(self, schema, name: str) -> str:
        """A rule for `schema` among the rules already here, with its $refs resolved within
        it."""
        outer, self.root, self._refs = (self.root, self._refs), schema, {}
        try:
            expression = self._visit(schema, name, "", 0, frozenset())
        finally:
            self.root, self._refs = outer
        return expression if expression in self.rules else self._add(name, expression)

    def grammar_for_primitive(self, name: str) -> str:
        self._add("root", self._primitive(name))
        return self._finish()

    def _finish(self) -> str:
        text = "".join(f"{name} ::= {body}\n" for name, body in self.rules.items())
        self.cost += len(text)
        if self.cost > MAX_COST:
            raise SchemaError(f"its grammar would be larger than this server allows ({self.cost}"
                              f" > {MAX_COST} bytes and repetitions); make the schema smaller")
        return text

    # -- rules --

    def _add(self, name: str, body: str) -> str:
        """Add a rule; a name already taken by another rule gets a number."""
        name = _RULE_NAME.sub("-", name).strip("-") or "rule"
        candidate, n = name, 1
        while candidate in self.rules and self.rules[candidate] != body:
            n += 1
            candidate = f"{name}-{n}"
        self.rules[candidate] = body
        return candidate

    def _primitive(self, name: str) -> str:
        if name not in self.rules:
            self.rules[name] = PRIMITIVES[name]
            for dependency in _DEPENDS.get(name, []):
                self._primitive(dependency)
        return name

    # -- schemas --

    def _visit(self, schema, name: str, where: str, depth: int, unconsumed: frozenset) -> str:
        """A GBNF expression for `schema`. `unconsumed` holds the $refs entered since the last
        character the grammar must consume: meeting one again is a loop llama.cpp cannot
        parse."""
        if depth > MAX_DEPTH:
            raise SchemaError(f"schemas nest deeper than {MAX_DEPTH} levels", where)
        if schema is True or schema == {}:
            return self._primitive("value")
        if not isinstance(schema, dict):
            raise SchemaError("expected a schema object", where)
        nested = (name, where, depth + 1)
        if "$ref" in schema:
            return self._ref(schema["$ref"], _at(where, "$ref"), depth, unconsumed)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._union(schema[key], *nested, key, unconsumed)
        kind = schema.get("type")
        if isinstance(kind, list):
            return self._union([{**schema, "type": k} for k in kind], *nested, "type",
                               unconsumed)
        if "allOf" in schema:
            return self._object(self._merged(schema, where), *nested)
        if "const" in schema:
            return self._constant(schema["const"])
        if "enum" in schema:
            return self._enum(schema["enum"], _at(where, "enum"))
        if kind in (None, "object") and ("properties" in schema or isinstance(
                schema.get("additionalProperties"), dict)):
            return self._object(schema, *nested)
        if kind in (None, "array") and ("items" in schema or "prefixItems" in schema):
            return self._array(schema, *nested)
        if kind in (None, "string") and any(k in schema for k in (
                "pattern", "format", "minLength", "maxLength")):
            return self._string(schema, name, where)
        if kind in ("integer", "number") and any(k in schema for k in (
                "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return self._bounded_number(schema, kind, where)
        if kind is None:
            return self._primitive("value")
        if kind not in ("string", "number", "integer", "boolean", "null", "object", "array"):
            raise SchemaError(f"unknown type {kind!r}", _at(where, "type"))
        return self._primitive(kind)

    def _ref(self, ref, where: str, depth: int, unconsumed: frozenset) -> str:
        if ref in unconsumed:
            raise SchemaError(f"{ref} refers back to itself before any value is written", where)
        if ref in self._refs:
            return self._refs[ref]
        target = self._resolve(ref, where)
        # Reserved before the target is visited, so that a recursive reference finds it.
        name = self._add("ref-" + ref.rsplit("/", 1)[-1], f"<{ref}>")
        self._refs[ref] = name
        self.rules[name] = self._visit(target, name, ref[1:].lstrip("/").replace("/", "."),
                                       depth + 1, unconsumed | {ref})
        return name

    def _union(self, options, name: str, where: str, depth: int, key: str,
               unconsumed: frozenset) -> str:
        if not isinstance(options, list) or not options:
            raise SchemaError(f"{key} must be a non-empty array", _at(where, key))
        return self._add(name, " | ".join(
            self._visit(option, f"{name}-{i}", _at(where, f"{key}[{i}]"), depth,
                        unconsumed) for i, option in enumerate(options)))

    def _enum(self, values, where: str) -> str:
        if not isinstance(values, list) or not values:
            raise SchemaError("enum must be a non-empty array", where)
        if len(values) > MAX_ENUM:
            raise SchemaError(f"an enum of {len(values)} values is more than the {MAX_ENUM} "
                              "this server allows", where)
        return "(" + " | ".join(literal(_json(value)) for value in values) + ") space"

    def _constant(self, value) -> str:
        return f"{literal(_json(value))} space"

    def _merged(self, schema: dict, where: str) -> dict:
        """allOf of object schemas, as one object schema."""
        merged = {"type": "object", "properties": {}, "required": []}
        for i, part in enumerate(schema["allOf"] if isinstance(schema["allOf"], list) else []):
            seen = set()
            while isinstance(part, dict) and "$ref" in part and part["$ref"] not in seen:
                seen.add(part["$ref"])
                part = self._resolve(part["$ref"], _at(where, f"allOf[{i}]"))
            if not isinstance(part, dict) or part.get("type", "object") != "object":
                raise SchemaError("allOf is supported for object schemas only",
                                  _at(where, f"allOf[{i}]"))
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        merged["properties"].update(schema.get("properties", {}))
        merged["required"] += schema.get("required", [])
        return merged

    def _resolve(self, ref, where: str):
        """The schema a local $ref (a JSON pointer into the root schema) points at."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError("only local references (#/$defs/...) are supported", where)
        target = self.root
        for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise SchemaError(f"{ref} does not exist", where)
            target = target[part]
        return target

    def _object(self, schema: dict, name: str, where: str, depth: int) -> str:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(properties, dict) or not isinstance(required, list):
            raise SchemaError("properties must be an object and required an array", where)
        order = {key: i for i, key in enumerate(self.property_order or [])}
        names = sorted(properties, key=lambda key: (order.get(key, len(order)),
                                                    key not in required))
        pairs = {key: f'{literal(_json(key))} space ":" space ' + self._visit(
            properties[key], f"{name}-{key}", _at(where, f"properties.{key}"), depth,
            frozenset()) for key in names}
        mandatory = [pairs[key] for key in names if key in required]
        optional = [pairs[key] for key in names if key not in required]
        extra = schema.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            value = self._visit(extra, f"{name}-additional", _at(where, "additionalProperties"),
                                depth, frozenset())
            pair = self._add(f"{name}-additional-kv",
                             f'{self._other_keys(list(properties))} ":" space {value}')
            optional.append(f'{pair} ("," space {pair})*')
        body = ' "," space '.join(mandatory)
        if optional:
            chain = self._optional_chain(name, optional, first=not mandatory)
            body = f"{body} {chain}" if body else f"({chain})?"
        return self._add(name, f'"{{" space {body} "}}" space')

    def _optional_chain(self, name: str, pairs: list[str], first: bool) -> str:
        """Each of `pairs` present or not, in order, with commas between those present. After
        mandatory pairs (first=False) every present one starts with a comma."""
        if not first:
            return " ".join(f'("," space {pair})?' for pair in pairs)
        rest = ""
        for i in range(len(pairs) - 1, -1, -1):  # chain-i: the first present pair is i or later
            tail = " ".join(f'("," space {pair})?' for pair in pairs[i + 1:])
            body = f"{pairs[i]} {tail}".strip()
            rest = self._add(f"{name}-from-{i}", f"{body} | {rest}" if rest else body)
        return rest

    def _other_keys(self, taken: list[str]) -> str:
        """A JSON string that is none of `taken` (the declared properties' names)."""
        trie: dict = {}
        for key in taken:
            node = trie
            for char in key:
                node = node.setdefault(char, {})
            node[""] = {}
        self._primitive("char")

        def after(node: dict) -> str:
            """What may follow a prefix whose trie node is `node`."""
            children = sorted(c for c in node if c)
            options = [f"{literal(c)} ({after(node[c])})" for c in children]
            if children:
                others = "".join(_class_char(c) for c in children)
                options += [f'[^"\\\\\\x7F\\x00-\\x1F{others}] char*', f"{ANY_ESCAPE} char*"]
            else:
                options.append("char+")
            if "" not in node:  # the prefix itself is not a declared name
                options.append('""')
            return " | ".join(options)

        return f'"\\"" ({after(trie)}) "\\"" space'

    def _array(self, schema: dict, name: str, where: str, depth: int) -> str:
        if isinstance(schema.get("prefixItems"), list) or isinstance(schema.get("items"), list):
            items = schema.get("prefixItems") or schema["items"]
            parts = [self._visit(item, f"{name}-{i}", _at(where, f"prefixItems[{i}]"),
                                 depth, frozenset()) for i, item in enumerate(items)]
            return self._add(name, '"[" space ' + ' "," space '.join(parts) + ' "]" space')
        item = self._visit(schema["items"], f"{name}-item", _at(where, "items"), depth,
                           frozenset())
        if item not in self.rules:
            # llama.cpp refuses a repetition whose group expands to over 2000 rules, and
            # counts those of an inline item (a string of maxLength 500, five times over) but
            # a named rule as one.
            item = self._add(f"{name}-item", item)
        low, high = self._bounds(schema, "minItems", "maxItems", where)
        if high == 0:
            return self._add(name, '"[" space "]" space')
        more = f'("," space {item}){repeat(max(low - 1, 0), None if high is None else high - 1)}'
        items = f"{item} {more}" if low else f"({item} {more})?"
        return self._add(name, f'"[" space {items} "]" space')

    def _string(self, schema: dict, name: str, where: str) -> str:
        if "pattern" in schema:
            pattern = schema["pattern"]
            if not isinstance(pattern, str):
                raise SchemaError("pattern must be a string", _at(where, "pattern"))
            try:
                body, cost = pattern_rule(pattern, self._primitive("char"), MAX_REPEAT,
                                          MAX_MIN_REPEAT)
            except PatternError as error:
                raise SchemaError(f"pattern {pattern!r}: {error}", _at(where, "pattern")) from None
            self.cost += cost
            return self._add(name, f'"\\"" {body} "\\"" space')
        if schema.get("format") in _FORMATS:
            return f'"\\"" {self._primitive(schema["format"])} "\\"" space'
        low, high = self._bounds(schema, "minLength", "maxLength", where)
        return f'"\\"" {self._primitive("char")}{repeat(low, high)} "\\"" space'

    def _bounds(self, schema: dict, low_key: str, high_key: str, where: str):
        low, high = schema.get(low_key, 0), schema.get(high_key)
        for key, value in ((low_key, low), (high_key, high)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise SchemaError(f"{key} must be a whole number", _at(where, key))
        if low > MAX_MIN_REPEAT:
            raise SchemaError(f"{low_key} {low} is more than the {MAX_MIN_REPEAT} this server "
                              "allows", _at(where, low_key))
        if high is not None and high > MAX_REPEAT:
            raise SchemaError(f"{high_key} {high} is more than the {MAX_REPEAT} this server "
                              "allows", _at(where, high_key))
        if high is not None and high < low:
            raise SchemaError(f"{high_key} is less than {low_key}", where)
        self.cost += (high if high is not None else low) + 1
        return low, high

    def _bounded_number(self, schema: dict, kind: str, where: str) -> str:
        if kind == "number":  # bounds on fractions are not enforced, as in llama.cpp
            return self._primitive("number")
        low, high = _integer_bounds(schema, where)
        return f"({integer_range(low, high)}) space"


def _at(where: str, key: str) -> str:
    """The path of `key` inside the schema at `where`."""
    return f"{where}.{key}" if where and not key.startswith("[") else f"{where}{key}"


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _class_char(char: str) -> str:
    return "\\" + char if char in "]\\^-[" else char


# -- integers within bounds ---------------------------------------------------------------------

_LARGEST = 10 ** MAX_DIGITS - 1


def _integer_bounds(schema: dict, where: str) -> tuple[int, int]:
    """The smallest and largest integer the schema's minimum/maximum (inclusive or exclusive)
    allow, within what the grammar writes at all."""
    bounds = {}
    for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        value = schema.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SchemaError(f"{key} must be a number", _at(where, key))
        bounds[key] = value
    low, high = -_LARGEST, _LARGEST
    if bounds["minimum"] is not None:
        low = max(low, math.ceil(bounds["minimum"]))
    if bounds["exclusiveMinimum"] is not None:
        low = max(low, math.floor(bounds["exclusiveMinimum"]) + 1)
    if bounds["maximum"] is not None:
        high = min(high, math.floor(bounds["maximum"]))
    if bounds["exclusiveMaximum"] is not None:
        high = min(high, math.ceil(bounds["exclusiveMaximum"]) - 1)
    if low > high:
        raise SchemaError("no integer lies between the minimum and the maximum", where)
    return low, high


def integer_range(low: int, high: int) -> str:
    """GBNF for the integers from `low` to `high`, written as JSON writes them."""
    options = []
    if low < 0:
        negative = _natural_range(max(1, -high) if high < 0 else 1, -low)
        options.append(f'"-" ({negative})')
    if high >= 0:
        options.append(_natural_range(max(low, 0), high))
    return " | ".join(options)


def _natural_range(low: int, high: int) -> str:
    """Non-negative integers from `low` to `high`, without leading zeros: split where the
    number of digits changes, then digit by digit."""
    options = []
    while low <= high:
        top = min(high, 10 ** len(str(low)) - 1)
        options.extend(_same_length(str(low), str(top)))
        low = top + 1
    return " | ".join(options)


def _same_length(low: str, high: str) -> list[str]:
    if len(low) == 1:
        return [f"[{low}-{high}]" if low != high else f'"{low}"']
    rest = len(low) - 1
    if low[0] == high[0]:
        return [f'"{low[0]}" (' + " | ".join(_same_length(low[1:], high[1:])) + ")"]
    options = []
    first, last = int(low[0]), int(high[0])
    if low[1:] != "0" * rest:  # from low to the end of its first digit's run
        options.append(f'"{low[0]}" (' + " | ".join(_same_length(low[1:], "9" * rest)) + ")")
        first += 1
    if high[1:] != "9" * rest:
        last -= 1
    if first <= last:  # first digits whose every continuation is in range
        digit = f"[{first}-{last}]" if first != last else f'"{first}"'
        options.append(f"{digit} [0-9]{{{rest}}}")
    if high[1:] != "9" * rest:  # from the start of high's first digit's run to high
        options.append(f'"{high[0]}" (' + " | ".join(_same_length("0" * rest, high[1:])) + ")")
    return options
