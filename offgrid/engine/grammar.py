"""GBNF grammars that hold sampling to JSON: any JSON object, or JSON valid against a schema.

The JSON-Schema converter is the one llama-cpp-python ships (a port of llama.cpp's
json_schema_to_grammar); it handles $ref/$defs, enums, const, anyOf, required and
additionalProperties, and string and array length bounds.
"""

from __future__ import annotations

import json
import re

from llama_cpp.llama_grammar import JSON_GBNF, SchemaConverter

from .errors import InvalidGrammar

_ROOT_RULE = re.compile(r"^root ::=", re.M)


def json_object() -> str:
    """Any JSON object."""
    return JSON_GBNF


def json_schema(schema: dict, property_order: list[str] | None = None) -> str:
    """JSON that validates against `schema`; properties named in `property_order` come first."""
    converter = SchemaConverter(prop_order={name: i for i, name in enumerate(property_order or [])},
                                allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        converter.visit(converter.resolve_refs(json.loads(json.dumps(schema)), "schema"), "")
        return converter.format_grammar()
    except Exception as error:  # the converter fails in many ways on schemas it cannot read
        raise InvalidGrammar(f"the JSON schema cannot be enforced: {error}") from None


def json_or_text(json_grammar: str) -> str:
    """Either JSON matching `json_grammar` (which must start with `{`) or plain text that does
    not start with `{`: lets a model answer in words or in the structured form, never in
    broken JSON."""
    return (_ROOT_RULE.sub("structured ::=", json_grammar, count=1)
            + '\nroot ::= structured | plain-text\n'
            + 'plain-text ::= [^{ \\t\\n] [^\\x00]*\n')
