"""The agent loop: a model works a task through in steps, calling tools and reading their
results, until it answers.

Every model step is generated under a grammar that admits only a call of one of the run's tools,
with arguments valid against its JSON Schema, or a final answer; so the step parses even from
the 135M starter model. Two styles:
- native: the chat path's own tool calling (engine/toolcalling.py): the call comes out as
  `{"tool_calls": [...]}` and its result goes back as the next turn;
- react: Thought / Action / Action Input, the result back as an Observation, until a Final
  Answer.
Guards end a run with a finish_reason: "stop" (answered), "max_steps", "timeout" (timeout_s),
"repeated_failure" (the same call failing again), "length" (a step cut short), or "cancelled"
(the caller left: its generation and its running tool call are stopped). All that happens is
an event, for a stream as it comes or for one answer at the end.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..engine import generate, grammar, toolcalling
from ..engine.requests import Failed, Finished, GenerationRequest, Text
from ..engine.sampling import SamplingParams
from ..engine.scheduler import Scheduler
from .tools import Tool, ToolContext, ToolResult, call_tool

STEP_TOKENS = 512  # the most one model step may write
# In a call, the most items of an array and characters of a string the grammar lets a model
# write (fewer where the tool's schema says so): a small model that starts repeating itself
# must close the value, so its step still ends as a whole call. The tool checks the rest.
CALL_ITEMS = 5
CALL_CHARS = 1000
THOUGHT_CHARS = 200  # a react step's thought, at most: with a call, a step fits STEP_TOKENS
REPEATED_FAILURES = 2  # the same call failing this many times in a row ends the run
RESULT_CHARS = 4000  # of a tool's result, what the model reads back
STYLES = ("native", "react")
NEXT = "\n\nIf this answers the task, answer now; else use another tool."
DEFAULT_SYSTEM = ("You are a careful assistant. Work the task through step by step, use a tool "
                  "when it helps, and answer briefly once you know the answer.")


@dataclass(frozen=True)
class AgentTask:
    task: str
    style: str = "native"
    max_steps: int = 10
    timeout_s: float = 120.0
    system_prompt: str | None = None
    call_first: bool = False  # the first step must call a tool (small models like to guess)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.2))


@dataclass
class Step:
    type: str  # thought, tool_call, tool_result, answer, error
    content: str = ""
    tool_name: str | None = None
    tool_args: object = None
    tool_result: str | None = None
    duration_ms: float = 0.0

    def as_dict(self) -> dict:
        return {"type": self.type, "content": self.content, "tool_name": self.tool_name,
                "tool_args": self.tool_args, "tool_result": self.tool_result,
                "duration_ms": round(self.duration_ms, 1)}


@dataclass(frozen=True)
class Status:
    message: str


@dataclass(frozen=True)
class Token:
    text: str  # a piece of the final answer as the model writes it


@dataclass(frozen=True)
class StepTaken:
    step: Step


@dataclass(frozen=True)
class Done:
    output: str
    steps: list[Step]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class _Counter:
    """Hands a run's tokens on to the caller's meter, and keeps the sums for its usage."""

    def __init__(self, meter):
        self._meter = meter
        self.tokens = 0

    def add(self, tokens: int) -> None:
        self.tokens += tokens
        self._meter.add(tokens)


class AgentRun:
    """One task worked through; iterate it for its events, Done last (unless the caller left:
    then it stops, having cancelled what ran)."""

    def __init__(self, scheduler: Scheduler, tools: list[Tool], task: AgentTask,
                 context: ToolContext, meter, caller_gone: Callable[[], bool]):
        self.id = "agent-" + uuid.uuid4().hex[:16]
        self._scheduler = scheduler
        self._tools = {tool.name: tool for tool in tools}
        self._task = task
        self._context = context
        self._counter = _Counter(meter)
        self._caller_gone = caller_gone
        self._deadline = time.monotonic() + task.timeout_s
        self._style = (_Native if task.style == "native" else _React)(tools)
        self._steps: list[Step] = []
        self._prompt_tokens = self._completion_tokens = 0

    def __iter__(self) -> Iterator[object]:
        messages = self._style.opening(self._task)
        failures: tuple[str, int] = ("", 0)
        last_call, must = "", "call" if self._task.call_first else None
        if not self._tools:  # nothing to call: the one step is the answer
            must = "answer"
        for _ in range(self._task.max_steps):
            if time.monotonic() >= self._deadline:
                yield from self._done("", "timeout")
                return
            yield Status("thinking")
            written = yield from self._generate(messages, must)
            if written is None:
                return  # the caller left
            text, reason = written
            turn = self._style.read(text)
            if turn.thought:
                yield from self._step(Step("thought", turn.thought))
            if turn.answer is not None:
                yield from self._step(Step("answer", turn.answer))
                yield from self._done(turn.answer, "stop")
                return
            if turn.call is None:  # cut short by STEP_TOKENS before a call was whole
                yield from self._step(Step("error", "The model's step was cut short before "
                                           f"it was a whole call or answer: {text[-300:]!r}"))
                yield from self._done("", "length" if reason == "length" else "error")
                return
            key = turn.call.name + json.dumps(turn.call.arguments, sort_keys=True)
            if key == last_call:  # the same call again: its result is known; time to answer
                must = "answer"
                continue
            result = yield from self._call(turn.call)
            if result is None:
                return  # the caller left
            messages = self._style.after(messages, text, turn.call, result)
            last_call, must = ("" if result.is_error else key), None
            failures = (key, failures[1] + 1 if failures[0] == key else 1) if result.is_error \
                else ("", 0)
            if failures[1] >= REPEATED_FAILURES:
                yield from self._done("", "repeated_failure")
                return
        yield from self._done("", "max_steps")

    # -- one model step --

    def _generate(self, messages: list[tuple[str, str]], must: str | None):
        """Generate one step (`must` be a "call" or an "answer", or either), streaming what may
        be the answer as Token events; (text, finish reason), or None when the caller left."""
        request = GenerationRequest(messages=messages, max_tokens=STEP_TOKENS, sampling=(
            dataclasses.replace(self._task.sampling, grammar=self._style.grammars[must])),
            stop=list(self._style.stop))
        run = generate.Run(self._scheduler, [request], per_prompt=1, meter=self._counter,
                           caller_gone=self._caller_gone)
        try:
            if not run.started():
                return None
            text, finished, streamed = "", None, 0
            for _, event in run:
                if isinstance(event, Failed):
                    raise event.error
                if isinstance(event, Text):
                    text += event.text
                    answer = self._style.answer_so_far(text)
                    if answer is not None and len(answer) > streamed:
                        yield Token(answer[streamed:])
                        streamed = len(answer)
                elif isinstance(event, Finished):
                    finished = event
        finally:
            run.close()
        if finished is None:
            return None
        self._prompt_tokens += finished.prompt_tokens
        self._completion_tokens += finished.completion_tokens
        return text, finished.reason

    # -- one tool call --

    def _call(self, call: toolcalling.ToolCall):
        """Run a call in a worker thread, within its timeout and the run's deadline; its
        result, or None when the caller left (the call is told to stop)."""
        yield from self._step(Step("tool_call", tool_name=call.name, tool_args=call.arguments))
        yield Status(f"calling {call.name}")
        tool = self._tools[call.name]
        deadline = min(self._deadline, time.monotonic() + tool.timeout_s)
        started = time.monotonic()
        result = call_tool(tool, call.arguments, dataclasses.replace(self._context,
                                                                     deadline=deadline),
                           self._caller_gone)
        if result is None:
            return None
        text = result.text if len(result.text) <= RESULT_CHARS else (
            result.text[:RESULT_CHARS] + " [cut short]")
        yield from self._step(Step("error" if result.is_error else "tool_result",
                                   text if result.is_error else "", call.name, call.arguments,
                                   text, (time.monotonic() - started) * 1000))
        return dataclasses.replace(result, text=text)

    # -- events --

    def _step(self, step: Step):
        self._steps.append(step)
        yield StepTaken(step)

    def _done(self, output: str, reason: str):
        yield Done(output, self._steps, self._prompt_tokens, self._completion_tokens, reason)


# -- the styles ------------------------------------------------------------------------------------

def _described(tools: list[Tool]) -> tuple[toolcalling.Tool, ...]:
    """The tools as the engine's tool calling takes them, with their arguments bounded."""
    return tuple(toolcalling.Tool(t.name, t.description, bounded(t.parameters)) for t in tools)


_SUBSCHEMAS = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def bounded(schema):
    """`schema` with each array at most CALL_ITEMS long and each free string (no pattern,
    format, enum or const) at most CALL_CHARS, where it allowed more."""
    if not isinstance(schema, dict):
        return schema
    tightened = {key: bounded(value) if key in _SUBSCHEMAS else value
                 for key, value in schema.items()}
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            tightened[key] = [bounded(option) for option in schema[key]]
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            tightened[key] = {name: bounded(value) for name, value in schema[key].items()}
    kinds = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    if "array" in kinds or "items" in schema:
        tightened["maxItems"] = _at_most(schema, "maxItems", "minItems", CALL_ITEMS)
    if "string" in kinds and not any(k in schema for k in ("pattern", "format", "enum",
                                                           "const")):
        tightened["maxLength"] = _at_most(schema, "maxLength", "minLength", CALL_CHARS)
    return tightened


def _at_most(schema: dict, bound: str, least: str, limit: int) -> int:
    given, minimum = schema.get(bound), schema.get(least)
    limit = min(given, limit) if isinstance(given, int) and not isinstance(given, bool) else limit
    return max(limit, minimum) if isinstance(minimum, int) and not isinstance(minimum, bool) \
        else limit


@dataclass(frozen=True)
class Turn:
    """What one model step said."""
    thought: str = ""
    call: toolcalling.ToolCall | None = None
    answer: str | None = None


class _Native:
    """The chat path's own tool calling: a JSON call, or plain text that is the answer."""
    stop = ()

    def __init__(self, tools: list[Tool]):
        self._use = toolcalling.ToolUse(_described(tools), required=False, forced=None,
                                        parallel=False)
        self.grammars = {"answer": grammar.text_only()}
        if tools:
            self.grammars.update({None: toolcalling.call_grammar(self._use),
                                  "call": toolcalling.call_grammar(
                                      dataclasses.replace(self._use, required=True))})

    def opening(self, task: AgentTask) -> list[tuple[str, str]]:
        messages = [("system", task.system_prompt or DEFAULT_SYSTEM), ("user", task.task)]
        return toolcalling.with_instructions(messages, self._use) if self._use.tools else messages

    def read(self, text: str) -> Turn:
        if not toolcalling.is_call(text):
            return Turn(answer=text.strip())
        calls = toolcalling.parse(text)
        return Turn(call=calls[0] if calls else None)

    def answer_so_far(self, text: str) -> str | None:
        stripped = text.lstrip()
        return None if not stripped or toolcalling.is_call(stripped) else stripped

    @staticmethod
    def after(messages, text: str, call: toolcalling.ToolCall, result: ToolResult):
        return [*messages, ("assistant", toolcalling.call_text([call])),
                ("user", toolcalling.result_text(call.name, result.text) + NEXT)]


class _React:
    """Thought / Action / Action Input text; the result comes back as an Observation."""
    ANSWER = "Final Answer:"
    # A small model goes on past its answer, writing the next turns itself. No step the
    # grammar admits holds these (a thought is one line, the first; JSON here has no newline),
    # so they only ever end an answer: at its first blank line.
    stop = ("\n\n", "\nObservation:", "\nThought:")
    _ACTION = re.compile(r"\nAction: (?P<name>[A-Za-z0-9_-]+)\nAction Input: (?P<args>.*)\Z",
                         re.S)

    def __init__(self, tools: list[Tool]):
        self._tools = tools
        builder = grammar.GrammarBuilder()
        thought = builder.rule("thought", f"[^\\n]{{1,{THOUGHT_CHARS}}}")
        actions = [f"{grammar.literal(chr(10) + 'Action: ' + t.name + chr(10))} "
                   f"{grammar.literal('Action Input: ')} "
                   f"{builder.json(bounded(t.parameters), 'input')}" for t in tools]
        answer = f"{grammar.literal(chr(10) + self.ANSWER + ' ')} [^\\x00]+"
        start = f'"Thought: " {thought} '
        self.grammars = {"answer": builder.build(start + answer)}
        if tools:
            self.grammars.update({
                None: builder.build(start + f'({" | ".join([*actions, answer])})'),
                "call": builder.build(start + f'({" | ".join(actions)})')})

    def opening(self, task: AgentTask) -> list[tuple[str, str]]:
        listed = "\n".join(map(toolcalling.signature, _described(self._tools)))
        instructions = (
            "You can use these tools:\n" + listed + "\nAnswer in this format:\n"
            "Thought: what to do next\nAction: the tool's name\nAction Input: its arguments as "
            "JSON\nThen wait for the Observation, its result. When you know the answer:\n"
            "Thought: I know the answer\nFinal Answer: the answer\n\nFor example, with a "
            "weather tool:\nThought: I need the weather in Oslo\nAction: weather\n"
            'Action Input: {"city": "Oslo"}\nObservation: 4 °C and rain\n'
            "Thought: I know the answer\nFinal Answer: It is 4 °C and raining in Oslo.")
        return [("system", (task.system_prompt or DEFAULT_SYSTEM) + "\n\n" + instructions),
                ("user", task.task)]

    def read(self, text: str) -> Turn:
        head, found, answer = text.partition("\n" + self.ANSWER)
        thought = head.removeprefix("Thought:").split("\n")[0].strip()
        if found:
            return Turn(thought, answer=answer.strip())
        action = self._ACTION.search(text)
        if action is None:
            return Turn(thought)
        try:
            arguments = json.loads(action["args"])
        except ValueError:  # cut short inside the arguments
            return Turn(thought)
        return Turn(thought, call=toolcalling.ToolCall(action["name"], arguments))

    def answer_so_far(self, text: str) -> str | None:
        _, found, answer = text.partition("\n" + self.ANSWER)
        return answer.lstrip() if found else None

    @staticmethod
    def after(messages, text: str, call: toolcalling.ToolCall, result: ToolResult):
        return [*messages, ("assistant", text), ("user", f"Observation: {result.text}")]
