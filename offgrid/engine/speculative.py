"""Speculative decoding from the prompt: guess a slot's next tokens from its own history, and let
one decode step check the guesses.

While a slot generates, the last few tokens of its history (prompt and answer so far) are looked
up earlier in that history; if they were seen before, the tokens that followed them there are the
draft. The scheduler feeds the draft after the slot's next token in the same batch and samples
the rows in order with the request's own sampler, keeping drafted tokens while each equals the
token sampled before it. Every token kept was sampled from the same logits, with the same sampler
state, as plain decoding would have used, so the output is the same at temperature 0 and has the
same distribution when sampling (and, with a seed, the same draws).

Drafting is not free: on a CPU each extra token in a batch costs about a third of a one-token
step, and beside other slots' tokens a draft is computed in a pass of its own (plan). How long a
draft is worth depends on the machine and on how often drafts like it were right, so both are
measured as the server runs: `StepCost` fits a one-pass step's time against its tokens, and
`Acceptance` keeps how often a drafted token was kept, by the length of the match it came from
(a long match, as when an answer quotes its prompt, is right far more often than a common phrase
of two tokens). `plan` then drafts a token only while its chance of being kept, per unit of cost,
beats what the step yields already; plain chat, whose matches are short and rarely right, drafts
almost nothing. The chance is read optimistically (an upper bound of what was seen), so that a
kind of match seldom tried is tried again, and a request that could draft but has not for a
while drafts one token, so that its own record can overrule the estimate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .llama import micro_batches

NGRAM_SIZES = (4, 3, 2)  # the suffix lengths looked up, longest first
# Most tokens drafted for one slot in one step: with its next token, a step of 16, which CPU
# kernels split evenly (on a 2-core EPYC a 17-token step took 62-74 ms, one of 16 53-57).
MAX_DRAFT = 15
MATCH_BUCKETS = (2, 3, 4, 6, 8, 12, 16, 24)  # match lengths that share an acceptance estimate
MAX_MATCH = MATCH_BUCKETS[-1]
# Depths in a draft from which on its tokens share an estimate (per kind of match): a token deep
# in a draft was reached because those before it were right, and is right more often. A band
# not tried yet is believed to be right as often as the band before it.
DEPTH_BANDS = (1, 2, 4, 8)
PRIOR_RATE = 0.5  # what a kind of match's first band is believed to be right at before it was tried
PRIOR_WEIGHT = 2.0  # ... worth this many drafted tokens
OPTIMISM = 1.0  # standard errors added to a rate before planning with it
DECAY = 0.99  # each new outcome weighs on a kind of match this much more than the one before
JOB_PRIOR_WEIGHT = 4.0  # a request's own outcomes count against its match kind's this much
# A request that could draft but was not planned to tries one token every EXPLORE_EVERY steps
# for each slot generating: a batch of many slots explores no more tokens per step than one
# slot alone, because in plain chat those tokens are rarely kept and a fuller step gains least.
EXPLORE_EVERY = 16
# Until both are measured, an extra token in a step is taken to cost this share of a one-token
# step (seen on 2-core CPUs: 12.5 ms for one token, 43 ms for eight).
PRIOR_MARGINAL_SHARE = 0.35
MAX_COST_TOKENS = 128  # steps bigger than this (prompt chunks) tell nothing about drafts
# A drafted token less likely than this to be kept is not weighed at all: it cannot pay for its
# share of a step, and weighing each offer costs a micro-batch split in Python.
LEAST_CHANCE = 0.05
# A step size's mean is a plain mean for its first steps, then moves this much toward each new
# one, so that a machine that got busier or quieter is followed within a few dozen steps.
COST_WEIGHT = 0.04


# -- drafts from the history ----------------------------------------------------------------------

@dataclass(frozen=True)
class Draft:
    tokens: list[int]
    match: int  # how many tokens before the draft matched where it was found
    from_model: bool = False  # guessed by the draft model, not found in the history


class PromptLookup:
    """A request's history with an index of its n-grams: where each was last seen with a token
    after it."""

    def __init__(self, tokens: list[int]):
        self.history: list[int] = []
        self._seen: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in NGRAM_SIZES}
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        history = self.history
        history.append(token)
        end = len(history) - 1  # the n-grams ending just before the new token are followed by it
        for n, seen in self._seen.items():
            if end >= n:
                seen[tuple(history[end - n:end])] = end

    def draft(self, limit: int) -> Draft | None:
        """Up to `limit` tokens that followed the latest earlier occurrence of the history's
        end, longest n-gram first; None if the end was not seen before."""
        history = self.history
        for n in NGRAM_SIZES:
            if len(history) <= n:
                continue
            start = self._seen[n].get(tuple(history[-n:]))
            if start is not None:
                tokens = history[start:start + limit]
                return Draft(tokens, self._match_length(start)) if tokens else None
        return None

    def _match_length(self, start: int) -> int:
        """How many tokens before `start` equal the history's last ones (at most MAX_MATCH)."""
        history, length = self.history, 0
        while (length < MAX_MATCH and length < start
               and history[start - 1 - length] == history[-1 - length]):
            length += 1
        return length


# -- what drafts have been worth ------------------------------------------------------------------

def _band(value: int, bands: tuple[int, ...]) -> int:
    """The index of the last of `bands` that `value` reaches (0 below the first)."""
    index = 0
    for i, least in enumerate(bands):
        if value >= least:
            index = i
    return index


def _outcomes(kept: int, checked: int) -> Iterator[tuple[int, bool]]:
    """The depth band and outcome (kept or not) of each token compared in a draft whose first
    `checked` tokens were compared with sampled ones, the first `kept` of them right."""
    for depth in range(1, checked + 1):
        yield _band(depth, DEPTH_BANDS), depth <= kept


def match_bucket(match: int) -> int:
    """The acceptance estimate a match of this length shares."""
    return _band(match, MATCH_BUCKETS)


@dataclass
class _Rate:
    """How often drafted tokens were kept (each outcome weighing DECAY times less than the next),
    read against a prior worth PRIOR_WEIGHT of them."""
    kept: float = 0.0
    checked: float = 0.0

    def add(self, kept: int, checked: int) -> None:
        decay = DECAY ** checked
        self.kept = self.kept * decay + kept
        self.checked = self.checked * decay + checked

    def mean(self, prior: float) -> float:
        return (self.kept + prior * PRIOR_WEIGHT) / (self.checked + PRIOR_WEIGHT)

    def optimistic(self, prior: float) -> float:
        rate = self.mean(prior)
        return min(1.0, rate + OPTIMISM * (rate * (1 - rate)
                                           / (self.checked + PRIOR_WEIGHT)) ** 0.5)


class Acceptance:
    """How often a drafted token was kept once the tokens before it in its draft were, per kind
    of match and depth in the draft (for one model). Misses come together, where the answer
    leaves what it repeats, so a draft that got far tends to go on."""

    def __init__(self):
        self._rates = [[_Rate() for _ in DEPTH_BANDS] for _ in MATCH_BUCKETS]

    def rate(self, match: int, depth: int = 1) -> float:
        """How likely the token at `depth` (from 1) of a draft from such a match is to be kept
        if those before it were, read optimistically. Each band's prior is the band before it:
        a band seldom reached is believed to go on as the draft went so far, not to fall back to
        PRIOR_RATE, which, once per token it covers, would cut every long draft short."""
        bands = self._rates[match_bucket(match)][:_band(depth, DEPTH_BANDS) + 1]
        prior = PRIOR_RATE
        for band in bands[:-1]:
            prior = band.mean(prior)
        return bands[-1].optimistic(prior)

    def add(self, match: int, kept: int, checked: int) -> None:
        """A draft's first `checked` tokens were compared, the first `kept` of them right."""
        rates = self._rates[match_bucket(match)]
        for band, right in _outcomes(kept, checked):
            rates[band].add(int(right), 1)


@dataclass
class JobAcceptance:
    """A request's own record, by depth in its drafts (DEPTH_BANDS): an answer that quotes keeps
    quoting, one that does not, not, and one that paraphrases what it repeats goes a few tokens
    and misses. Read against its kind of match's rate at the same depth (Acceptance)."""
    drafted: int = 0  # tokens fed as drafts, from the history or the draft model
    accepted: int = 0  # of those, the ones kept
    model_drafted: int = 0  # of the drafted and the accepted, those from the draft model
    model_accepted: int = 0
    # Of its drafts from its history, by depth band, the tokens compared with a sampled one (a
    # draft stops at its first miss) and the ones kept: what its rates are read from.
    checked: list[int] = field(default_factory=lambda: [0] * len(DEPTH_BANDS))
    kept: list[int] = field(default_factory=lambda: [0] * len(DEPTH_BANDS))
    idle: int = 0  # steps since it last drafted, though it could have

    def add(self, kept: int, checked: int) -> None:
        """A draft's first `checked` tokens were compared, the first `kept` of them right."""
        for band, right in _outcomes(kept, checked):
            self.checked[band] += 1
            self.kept[band] += right

    def rate(self, prior: float, depth: int = 1) -> float:
        """How likely its token at `depth` is to be kept if those before it were; `prior`:
        its kind of match's rate there."""
        band = _band(depth, DEPTH_BANDS)
        return ((self.kept[band] + prior * JOB_PRIOR_WEIGHT)
                / (self.checked[band] + JOB_PRIOR_WEIGHT))


class StepCost:
    """What a decode step costs by the tokens in its batch, as measured (recent steps weigh
    more). The curve is not a line on a CPU (two tokens cost as much as two steps of one there,
    four hardly more than three), so each size keeps its own mean; a size not seen yet is read
    off its neighbours."""

    def __init__(self):
        self._mean: dict[int, float] = {}  # batch size -> mean seconds
        self._count: dict[int, int] = {}

    def observe(self, tokens: int, seconds: float) -> None:
        if not 0 < tokens <= MAX_COST_TOKENS:
            return
        count = self._count.get(tokens, 0)
        weight = max(1 / (count + 1), COST_WEIGHT)
        self._mean[tokens] = self._mean.get(tokens, seconds) * (1 - weight) + seconds * weight
        self._count[tokens] = count + 1

    @property
    def measured(self) -> bool:
        return bool(self._mean)

    def seconds(self, tokens: int) -> float:
        """A step of this many tokens: measured, between the nearest measured sizes, or past
        them at the usual share of a one-token step per extra token."""
        if tokens in self._mean:
            return self._mean[tokens]
        below = max((n for n in self._mean if n < tokens), default=None)
        above = min((n for n in self._mean if n > tokens), default=None)
        if below is not None and above is not None:
            share = (tokens - below) / (above - below)
            return self._mean[below] * (1 - share) + self._mean[above] * share
        known = below if below is not None else above
        one_token = self._mean[known] / (1 + (known - 1) * PRIOR_MARGINAL_SHARE)
        return self._mean[known] + (tokens - known) * one_token * PRIOR_MARGINAL_SHARE


# -- how much to draft ----------------------------------------------------------------------------

@dataclass
class Candidate:
    """A slot that could draft: its sequence, its draft as found, and how likely each of its
    tokens is to be kept if those before it were."""
    seq: int
    draft: Draft
    rates: list[float]
    planned: int = 0

    def worth(self) -> list[float]:
        """How likely each of its tokens is to be kept: those before it must be too."""
        chances, chance = [], 1.0
        for rate in self.rates:
            chance *= rate
            chances.append(chance)
        return chances


def step_seconds(cost: StepCost, fed: dict[int, int]) -> float:
    """What a step feeding these tokens per sequence (in the batch's order) costs: one step's
    time per micro-batch llama.cpp computes it in (llama.micro_batches)."""
    return sum(cost.seconds(size) for size in micro_batches(fed))


def plan(candidates: list[Candidate], generating: list[int], cost: StepCost) -> None:
    """Set each candidate's `planned` tokens so as to get the most tokens per second from the
    step. A drafted token is kept only if every one before it is (Candidate.worth); the
    likeliest are taken first, as many as give the best expected tokens over the step's cost.
    `generating`: the sequences that get a token from the step anyway, in the batch's order.
    The step costs its micro-batches (step_seconds): beside other slots a draft is computed in
    a pass of its own, unless the slots next to it draft as many tokens."""
    if not candidates:
        return
    if not cost.measured:  # nothing timed yet: one token each, which starts measuring
        for candidate in candidates:
            candidate.planned = 1
        return
    offers = sorted(((chance, index) for index, candidate in enumerate(candidates)
                     for chance in candidate.worth() if chance >= LEAST_CHANCE), reverse=True)
    fed = dict.fromkeys(generating, 1)  # tokens per sequence
    best, best_yield = 0, len(generating) / step_seconds(cost, fed)
    expected = float(len(generating))
    for taken, (value, index) in enumerate(offers, start=1):
        expected += value
        fed[candidates[index].seq] += 1
        per_second = expected / step_seconds(cost, fed)
        if per_second > best_yield:
            best, best_yield = taken, per_second
    for _, index in offers[:best]:
        candidates[index].planned += 1


def model_depth(rate: float, drafting: list[int], fed: dict[int, int], cost: StepCost,
                draft_cost: StepCost) -> int:
    """How many tokens the draft model should guess for each of the `drafting` sequences, to
    get the most tokens per second: each depth costs one step of the draft model for all of
    them, and their tokens in the chat model's step. `fed`: the tokens per sequence that step
    holds already, one of them each generating slot's next token."""
    best, best_yield = 0, len(fed) / step_seconds(cost, fed)
    expected = float(len(fed))
    guessing = step_seconds(draft_cost, dict.fromkeys(drafting, 1))
    for depth in range(1, MAX_DRAFT + 1):
        expected += len(drafting) * rate ** depth
        deeper = {seq: n + depth if seq in drafting else n for seq, n in fed.items()}
        seconds = step_seconds(cost, deeper) + depth * guessing
        if expected / seconds > best_yield:
            best, best_yield = depth, expected / seconds
    return best


# -- one model's drafting -------------------------------------------------------------------------

@dataclass(frozen=True)
class Room:
    """A generating slot that may draft: its request's history and record, and how many tokens
    its answer and context have room for after its next one."""
    seq: int
    lookup: PromptLookup
    record: JobAcceptance
    limit: int


class Speculator:
    """What drafting has been worth for one model (step costs, acceptance by kind of match and
    of the draft model), and the drafts of each step. The scheduler feeds and checks them."""

    def __init__(self, drafter=None):
        self._acceptance = Acceptance()
        self._cost = StepCost()
        self._drafter = drafter  # a DraftModel (draft_model.py), or None
        self._model_rate = _Rate()  # how often the draft model's tokens were kept
        self._model_idle = 0  # steps since the draft model last guessed, though it could have

    def observe_step(self, tokens: int, seconds: float) -> None:
        self._cost.observe(tokens, seconds)

    def drafts(self, rooms: list[Room]) -> dict[int, Draft]:
        """The draft of each slot that drafts this step, by sequence: from its history, as
        many tokens as are worth their cost (plan), and one token from a request that could have
        drafted for EXPLORE_EVERY steps per slot generating but was not planned to; then, for
        the slots left, the draft model's guesses. `rooms`: every slot generating in the step,
        in the batch's order."""
        generating = [room.seq for room in rooms]
        rooms = [room for room in rooms if room.limit > 0]
        drafts = self._history_drafts(rooms, generating)
        if self._drafter is not None:
            rest = [room for room in rooms if room.seq not in drafts]
            fed = {seq: 1 + len(drafts[seq].tokens) if seq in drafts else 1 for seq in generating}
            drafts.update(self._model_drafts(rest, fed))
        return drafts

    def _history_drafts(self, rooms: list[Room], generating: list[int]) -> dict[int, Draft]:
        found = [(room, room.lookup.draft(min(MAX_DRAFT, room.limit))) for room in rooms]
        found = [(room, draft) for room, draft in found if draft is not None]
        candidates = [Candidate(room.seq, draft, [
            room.record.rate(self._acceptance.rate(draft.match, depth), depth)
            for depth in range(1, len(draft.tokens) + 1)]) for room, draft in found]
        plan(candidates, generating, self._cost)
        explore_after = EXPLORE_EVERY * max(1, len(generating))
        drafts = {}
        for (room, draft), candidate in zip(found, candidates, strict=True):
            room.record.idle += 1
            if not candidate.planned and room.record.idle >= explore_after:
                candidate.planned = 1
            if candidate.planned:
                room.record.idle = 0
                drafts[room.seq] = Draft(draft.tokens[:candidate.planned], draft.match)
        return drafts

    def _model_drafts(self, rooms: list[Room], fed: dict[int, int]) -> dict[int, Draft]:
        if not rooms:
            return {}
        depth = 1  # until both models' steps are timed
        if self._cost.measured and self._drafter.cost.measured:
            depth = model_depth(self._model_rate.optimistic(PRIOR_RATE),
                                [room.seq for room in rooms], fed,
                                self._cost, self._drafter.cost)
        self._model_idle += 1
        if not depth and self._model_idle >= EXPLORE_EVERY:
            depth = 1
        if not depth:
            return {}
        self._model_idle = 0
        guesses = self._drafter.guess({room.seq: room.lookup.history for room in rooms},
                                      min(depth, max(room.limit for room in rooms)))
        return {room.seq: Draft(guesses[room.seq][:room.limit], 0, from_model=True)
                for room in rooms if room.seq in guesses}

    def checked(self, record: JobAcceptance, draft: Draft, checked: int, kept: int) -> None:
        """A draft was checked: `checked` of its tokens compared with what was sampled, the
        first `kept` equal to it (the scheduler counts the request's drafted and accepted tokens
        itself, as they happen)."""
        if draft.from_model:
            self._model_rate.add(kept, checked)
            return
        record.add(kept, checked)
        self._acceptance.add(draft.match, kept, checked)

    def close(self) -> None:
        if self._drafter is not None:
            self._drafter.close()
