"""The JSON Schema to GBNF converter, judged by llama.cpp's own grammar engine: a text is
accepted when every one of its tokens is allowed in turn and the end of text is allowed after
them. No text is ever forced on a grammar that refuses it (llama.cpp would abort)."""

import json

import pytest

from offgrid.engine import grammar
from offgrid.engine.grammar import SchemaError
from offgrid.engine.llama import Grammar, Model


@pytest.fixture(scope="module")
def model(model_files):
    return Model(model_files["starter"])


def accepts(model: Model, gbnf: str, text: str) -> bool:
    judge = Grammar(model, gbnf)
    try:
        for char in text:  # one character at a time, so that no token spans a refusal
            for token in model.tokenize(char, add_special=False, parse_special=False):
                if not judge.allows(token):
                    return False
                judge.accept(token)
        return judge.allows(model.end_token)
    finally:
        judge.close()


def schema_accepts(model, schema, value) -> bool:
    text = value if isinstance(value, str) else json.dumps(value)
    return accepts(model, grammar.json_schema(schema), text)


def test_strings_hold_no_raw_control_characters(model):
    schema = {"type": "string", "maxLength": 3}
    assert schema_accepts(model, schema, '"abc"')
    assert schema_accepts(model, schema, '"a\\nb"')  # an escaped newline
    assert not schema_accepts(model, schema, '"a\nb"')  # a raw one
    assert not schema_accepts(model, schema, '"a\tb"')
    assert not schema_accepts(model, schema, '"abcd"')
    assert schema_accepts(model, {"type": "string", "minLength": 2}, '"\\u00e9x"')
    assert not schema_accepts(model, {"type": "string", "minLength": 2}, '"x"')
    assert not accepts(model, grammar.json_object(), '{"a": "x\ny"}')
    assert accepts(model, grammar.json_object(), '{"a": [1, {"b": null}], "c": -2.5e3}')


@pytest.mark.parametrize("low, high", [(0, 150), (-5, 120), (7, 7), (-120, -5), (1, 1000),
                                       (95, 105), (0, 0), (-9, 9), (10, 99)])
def test_integer_bounds_admit_exactly_their_range(model, low, high):
    gbnf = grammar.json_schema({"type": "integer", "minimum": low, "maximum": high})
    for n in range(low - 25, high + 25):
        assert accepts(model, gbnf, str(n)) == (low <= n <= high), n
    assert not accepts(model, gbnf, "007")


def test_exclusive_and_one_sided_integer_bounds(model):
    above = grammar.json_schema({"type": "integer", "exclusiveMinimum": 3})
    assert [n for n in range(-5, 12) if accepts(model, above, str(n))] == list(range(4, 12))
    assert accepts(model, above, "123456789")
    below = grammar.json_schema({"type": "integer", "maximum": -2.5})
    assert [n for n in range(-6, 6) if accepts(model, below, str(n))] == [-6, -5, -4, -3]


def test_objects_have_their_properties_required_ones_first(model):
    schema = {"type": "object", "required": ["b"],
              "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                             "c": {"type": "boolean"}}}
    assert schema_accepts(model, schema, '{"b": "x"}')
    assert schema_accepts(model, schema, '{"b": "x", "a": 1, "c": true}')
    assert schema_accepts(model, schema, '{"b": "x", "c": false}')
    assert not schema_accepts(model, schema, '{"a": 1, "b": "x"}')  # required ones first
    assert not schema_accepts(model, schema, '{"b": "x", "d": 1}')  # nothing undeclared
    assert not schema_accepts(model, schema, '{}')


def test_optional_properties_alone(model):
    schema = {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    for text in ('{}', '{"a": 1}', '{"b": 2}', '{"a": 1, "b": 2}'):
        assert schema_accepts(model, schema, text), text
    assert not schema_accepts(model, schema, '{"b": 2, "a": 1}')
    assert not schema_accepts(model, schema, '{, "a": 1}')


def test_additional_properties_never_repeat_a_declared_name(model):
    schema = {"properties": {"ab": {"type": "string"}, "a": {"type": "integer"}},
              "additionalProperties": {"type": "number"}}
    assert schema_accepts(model, schema, '{"ab": "x", "zz": 1.5, "abc": 2}')
    assert schema_accepts(model, schema, '{"": 1}')
    assert not schema_accepts(model, schema, '{"ab": "x", "ab": 1.5}')  # a declared name again
    assert not schema_accepts(model, schema, '{"zz": "text"}')


def test_arrays_enums_unions_and_formats(model):
    tags = {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2}
    assert schema_accepts(model, tags, ["a"]) and schema_accepts(model, tags, ["b", "a"])
    assert not schema_accepts(model, tags, []) and not schema_accepts(model, tags, ["a"] * 3)
    assert not schema_accepts(model, tags, ["c"])
    pair = {"prefixItems": [{"type": "integer"}, {"type": "string"}]}
    assert schema_accepts(model, pair, [1, "x"]) and not schema_accepts(model, pair, ["x", 1])
    either = {"anyOf": [{"type": "null"}, {"const": {"k": [1, 2]}}]}
    assert schema_accepts(model, either, None) and schema_accepts(model, either, {"k": [1, 2]})
    assert not schema_accepts(model, either, {"k": [2]})
    typed = {"type": ["integer", "boolean"]}
    assert schema_accepts(model, typed, 3) and schema_accepts(model, typed, True)
    assert not schema_accepts(model, typed, '"3"')
    assert schema_accepts(model, {"type": "string", "format": "date"}, '"2026-12-02"')
    assert not schema_accepts(model, {"type": "string", "format": "date"}, '"2026-13-02"')
    assert schema_accepts(model, {"type": "string", "format": "uuid"},
                          '"123e4567-e89b-12d3-a456-426614174000"')


def test_patterns_match_the_decoded_string(model):
    code = {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"}
    assert schema_accepts(model, code, '"AB-123"')
    assert not schema_accepts(model, code, '"Ab-123"') and not schema_accepts(model, code,
                                                                             '"AB-1234"')
    anywhere = {"type": "string", "pattern": "\\d"}
    assert schema_accepts(model, anywhere, '"x1y"') and not schema_accepts(model, anywhere, '"xy"')
    quoted = {"type": "string", "pattern": '^a"b\\\\c$'}  # the characters a " b \ c
    assert schema_accepts(model, quoted, '"a\\"b\\\\c"')
    alternatives = {"type": "string", "pattern": "^(cat|dog)s?$"}
    assert all(schema_accepts(model, alternatives, f'"{w}"') for w in ("cat", "dogs"))
    assert not schema_accepts(model, alternatives, '"cow"')
    negated = {"type": "string", "pattern": "^[^0-9]+$"}
    assert schema_accepts(model, negated, '"a\\"b"') and not schema_accepts(model, negated, '"a1"')


def test_references_recurse_but_never_loop_without_writing(model):
    tree = {"$defs": {"node": {"type": "object", "required": ["children"], "properties": {
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}}}},
        "$ref": "#/$defs/node"}
    assert schema_accepts(model, tree, {"children": [{"children": []}, {"children": []}]})
    for looping in ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
                    {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "null"}]},
                               "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
                    {"anyOf": [{"$ref": "#"}, {"type": "null"}]}):
        with pytest.raises(SchemaError, match="refers back to itself"):
            grammar.json_schema(looping)
    with pytest.raises(SchemaError, match="does not exist"):
        grammar.json_schema({"$ref": "#/$defs/missing"})
    with pytest.raises(SchemaError, match="only local"):
        grammar.json_schema({"$ref": "https://example.com/schema.json"})


@pytest.mark.parametrize("schema, where", [
    ({"type": "string", "maxLength": 30_000}, "maxLength"),
    ({"type": "string", "minLength": 10_000_000}, "minLength"),
    ({"type": "array", "items": {}, "maxItems": 30_000}, "maxItems"),
    ({"properties": {"x": {"type": "string", "maxLength": 30_000}}}, "properties.x.maxLength"),
    ({"enum": list(range(20_000))}, "enum"),
    ({"type": "string", "pattern": "^a{30000}$"}, "pattern"),
    ({"type": "string", "pattern": "^(a{1,50}){1,50}$"}, "pattern"),  # stalls llama.cpp
    ({"type": "string", "pattern": "^(a*){1,1000}$"}, "pattern"),
    ({"type": "string", "pattern": "^(?=a)"}, "pattern"),
    ({"type": "strange"}, "type"),
])
def test_what_would_cost_too_much_is_refused_and_located(schema, where):
    with pytest.raises(SchemaError) as refused:
        grammar.json_schema(schema)
    assert refused.value.where == where


def test_nested_repetitions_within_bounds_are_kept(model):
    octet = "(25[0-5]|2[0-4]\\d|1?\\d?\\d)"
    ipv4 = {"type": "string", "pattern": f"^({octet}\\.){{3}}{octet}$"}
    assert schema_accepts(model, ipv4, '"192.168.0.1"')
    assert not schema_accepts(model, ipv4, '"192.168.0.256"')
    words = {"type": "string", "pattern": "^([a-z]+ ){1,30}$"}
    assert schema_accepts(model, words, '"two words "')


def test_deep_and_huge_schemas_are_refused():
    deep: dict = {"type": "integer"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    with pytest.raises(SchemaError, match="nest deeper"):
        grammar.json_schema(deep)
    wide = {"properties": {f"field_{i}": {"enum": [f"value {j}" for j in range(900)]}
                           for i in range(40)}}
    with pytest.raises(SchemaError, match="larger than"):
        grammar.json_schema(wide)


def test_a_bounded_grammar_is_parsed_by_llama_cpp(model):
    for schema in ({"type": "string", "maxLength": 10_000}, {"type": "string", "minLength": 2000},
                   {"type": "array", "items": {"type": "integer"}, "maxItems": 10_000},
                   {"enum": [f"v{i}" for i in range(1000)]}):
        Grammar(model, grammar.json_schema(schema)).close()


def test_repeated_long_items_are_parsed_by_llama_cpp(model):
    """llama.cpp refuses a repetition of a group that expands to 2000 rules or more: an array
    of five strings of up to 1000 characters (as the agents bound them) is one only inline."""
    strings = {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 1000}}
    Grammar(model, grammar.json_schema(strings)).close()
    assert schema_accepts(model, strings, '["shed 3", "the generator"]')
