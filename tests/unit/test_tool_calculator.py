"""The calculator tool: arithmetic worked out exactly where it can be, and a hostile or runaway
expression refused before anything runs."""

from __future__ import annotations

import ast
import builtins

import pytest

from support.builtin_tools import call, refused


@pytest.mark.parametrize("expression, value", [
    ("1 + 2 * 3", 7), ("(17 * 23) + 4", 395), ("2 ** 10", 1024), ("7 // 2", 3), ("-7 % 3", 2),
    ("10 / 4", 2.5), ("-(3 - 5)", 2), ("sqrt(16) + abs(-2)", 6.0), ("round(pi, 2)", 3.14),
    ("round(2.5)", 2), ("log(8, 2)", 3.0), ("log10(1000)", 3.0), ("max(1, 9, 3) - min(4, 2)", 7),
    ("floor(2.7) + ceil(2.1)", 5), ("factorial(20)", 2432902008176640000), ("1e3 + 0.5", 1000.5),
    ("cos(0) + sin(0)", 1.0), ("exp(0)", 1.0), ("2 ** -1", 0.5), ("1_000 * 3", 3000),
])
def test_the_calculator_works_out_arithmetic(expression, value):
    result = call("calculator", expression=expression)
    assert not result.is_error, result
    assert result.text == f"{expression} = {value!r}"


def test_big_whole_numbers_are_exact_up_to_the_bound():
    assert call("calculator", expression="factorial(1000)").text.endswith("0" * 249)
    assert call("calculator", expression="2 ** 9999").text.endswith(str(2 ** 9999))


HOSTILE = [
    "__import__('os').system('touch MARKER')",
    "open('MARKER', 'w')",
    "exec(\"open('MARKER', 'w')\")",
    "eval(\"open('MARKER', 'w')\")",
    "(1).__class__.__bases__[0].__subclasses__()",
    "().__class__",
    "[].__class__.__mro__",
    "(lambda: open('MARKER', 'w'))()",
    "[open('MARKER', 'w') for x in (1,)]",
    "{'a': 1}",
    "'a' * 10",
    "b'MARKER'",
    "f'{open(\"MARKER\", \"w\")}'",
    "x",
    "pi.real",
    "sqrt.__globals__",
    "sqrt(x=4)",
    "(y := 3)",
    "1 if open('MARKER', 'w') else 2",
    "1 < 2",
    "True + 1",
    "2j",
    "2 ^ 8",
    "1; open('MARKER', 'w')",
    "import os",
    "1 + 2\x00",
]


@pytest.mark.parametrize("expression", HOSTILE)
def test_a_hostile_expression_is_refused_without_running_anything(expression, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_compile = builtins.compile

    def syntax_trees_only(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, "the calculator compiled text to code"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def never(*args, **kwargs):
        raise AssertionError("the calculator called eval or exec")

    monkeypatch.setattr(builtins, "compile", syntax_trees_only)
    monkeypatch.setattr(builtins, "eval", never)
    monkeypatch.setattr(builtins, "exec", never)
    refused(call("calculator", expression=expression))
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("expression, why", [
    ("9 ** 9 ** 9", "369,693,099 digits"), ("10 ** 100000", "100,000 digits"),
    ("2 ** 10001", "digits"), ("(10 ** 3000) * (10 ** 3000)", "digits"),
    ("factorial(10 ** 6)", "factorial takes a whole number from 0 to 1000"),
    ("factorial(1001)", "from 0 to 1000"), ("factorial(2.5)", "whole number"),
    ("round(5, -10 ** 100)", "digits must be"), ("1e308 * 10", "too large"),
    ("exp(1000)", "too large"), ("1.5 ** (10 ** 300)", "too large"),
    ("(-8) ** 0.5", "not a real number"), ("1 / 0", "Division by zero"), ("5 % 0", "zero"),
    ("sqrt(-1)", "Not defined"), ("log(0)", "Not defined"),
    ("-" * 60 + "1", "nests more than"), ("+".join(["1"] * 240), "characters long"),
    ("1" * 201, "most is 200"), ("", "empty"), ("2 +", "Not an arithmetic expression"),
    ("sqrt(1, 2)", "sqrt takes 1 argument, not 2"), ("nosuch(1)", "Unknown function"),
])
def test_what_would_run_away_or_is_undefined_is_refused_before_it_is_worked_out(expression, why):
    refused(call("calculator", expression=expression), why)
