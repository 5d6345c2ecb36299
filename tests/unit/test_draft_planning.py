"""Drafting from a request's history or with a draft model, and how much of a draft is worth a
step's cost. (The draft model itself is tested end to end in tests/test_speculative.py; here a
stand-in that guesses fixed tokens shows what the speculator asks of it.)"""

from __future__ import annotations

from offgrid.engine.llama import micro_batches
from offgrid.engine.speculative import (
    EXPLORE_EVERY,
    PRIOR_RATE,
    Acceptance,
    Candidate,
    Draft,
    JobAcceptance,
    PromptLookup,
    Room,
    Speculator,
    StepCost,
    model_depth,
    plan,
)


def test_a_draft_is_what_followed_the_latest_earlier_occurrence_of_the_end():
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3, 4, 7, 8, 0, 2, 3, 4])
    draft = lookup.draft(limit=3)
    assert draft.tokens == [7, 8, 0]  # after the second "2 3 4", not the first
    assert draft.match == 3


def test_the_longest_ngram_wins_and_the_match_counts_back_as_far_as_it_goes():
    lookup = PromptLookup([5, 6, 7, 8, 1, 9, 7, 8, 2, 5, 6, 7, 8])
    draft = lookup.draft(limit=2)
    assert draft.tokens == [1, 9]  # "5 6 7 8" is followed by 1, "7 8" alone by 2
    assert draft.match == 4


def test_no_draft_when_the_end_was_not_seen_before_and_the_history_grows():
    lookup = PromptLookup([1, 2, 3, 4])
    assert lookup.draft(limit=4) is None
    for token in (9, 1, 2, 3):
        lookup.append(token)
    assert lookup.draft(limit=4).tokens == [4, 9, 1, 2]
    assert lookup.draft(limit=1).tokens == [4]


def test_acceptance_is_kept_per_kind_of_match_and_forgets_slowly():
    acceptance = Acceptance()
    for _ in range(200):
        acceptance.add(match=20, kept=8, checked=8)
        acceptance.add(match=2, kept=0, checked=1)
    assert acceptance.rate(20) > 0.95
    assert acceptance.rate(2) < 0.05
    assert acceptance.rate(8) > PRIOR_RATE  # never tried: read optimistically, so it is tried
    own = _record(drafts=10, right=10)
    assert own.rate(prior=0.0) > 0.7  # its own record outweighs a bad prior
    assert JobAcceptance().rate(prior=0.3) == 0.3


def test_a_draft_that_got_far_is_believed_to_go_on():
    acceptance = Acceptance()
    for _ in range(100):  # half the drafts miss at once, the others are right all along
        acceptance.add(match=24, kept=0, checked=1)
        acceptance.add(match=24, kept=12, checked=12)
    assert acceptance.rate(24, depth=1) < 0.6
    assert acceptance.rate(24, depth=2) > 0.95 and acceptance.rate(24, depth=12) > 0.95


def test_a_band_never_reached_is_believed_to_go_on_as_the_draft_went_so_far():
    acceptance = Acceptance()
    for _ in range(100):  # drafts of 5 tokens, always right: depths 8 on were never checked
        acceptance.add(match=24, kept=5, checked=5)
    assert acceptance.rate(24, depth=12) > 0.95  # not PRIOR_RATE, once per token past 8


def test_a_requests_record_is_kept_by_depth_too():
    speculator, record = Speculator(), JobAcceptance()
    speculator.checked(record, Draft(list(range(8)), match=24), checked=8, kept=7)
    speculator.checked(record, Draft([1, 2], match=24), checked=1, kept=0)
    assert (record.checked, record.kept) == ([2, 2, 4, 1], [1, 2, 4, 0])
    # right from depth 2 to 7, missed at 8: a miss at the start or deep in is not the middle's
    assert record.rate(0.5, depth=5) > record.rate(0.5, depth=1) > record.rate(0.5, depth=8)


def _record(drafts: int, right: int) -> JobAcceptance:
    """A request's record of `drafts` one-token drafts, the first `right` of them right."""
    record = JobAcceptance()
    for number in range(drafts):
        record.add(kept=int(number < right), checked=1)
    return record


def test_deep_tokens_are_worth_what_all_before_them_are():
    candidate = Candidate(0, Draft([1, 2, 3], match=8), [0.5, 1.0, 0.8])
    assert candidate.worth() == [0.5, 0.5, 0.4]


def test_step_cost_reads_unseen_sizes_off_the_measured_ones():
    cost = StepCost()
    for _ in range(3):
        cost.observe(1, 0.010)
        cost.observe(5, 0.030)
        cost.observe(400, 9.0)  # a prompt chunk: not a draft's cost
    assert cost.seconds(3) == 0.020
    assert cost.seconds(9) > 0.030
    assert 400 not in cost._mean


def _costly_cpu() -> StepCost:
    """The curve measured on a 2-core CPU with SmolLM2: ms by tokens in the step."""
    cost = StepCost()
    for tokens, ms in {1: 11.5, 2: 22.8, 3: 33.0, 4: 33.7, 8: 60.0, 16: 100.4}.items():
        cost.observe(tokens, ms / 1000)
    return cost


def _candidate(rate: float, tokens: int = 16, seq: int = 0) -> Candidate:
    return Candidate(seq, Draft(list(range(tokens)), match=8), [rate] * tokens)


def test_a_quote_drafts_long_and_a_guess_drafts_nothing():
    sure, unsure = _candidate(0.98), _candidate(0.5, seq=1)
    plan([sure, unsure], generating=[0, 1], cost=_costly_cpu())
    assert sure.planned >= 14
    assert unsure.planned == 0


def test_when_extra_tokens_are_nearly_free_even_a_fair_guess_is_worth_drafting():
    cheap = StepCost()
    for tokens in range(1, 20):
        cheap.observe(tokens, 0.010 + tokens * 0.0001)
    fair = _candidate(0.5)
    plan([fair], generating=[0], cost=cheap)
    assert fair.planned >= 3


def test_an_unmeasured_machine_starts_with_one_token_each():
    first, second = _candidate(0.9), _candidate(0.1, seq=1)
    plan([first, second], generating=[0, 1], cost=StepCost())
    assert (first.planned, second.planned) == (1, 1)


def _measured_speculator(ms_by_tokens: dict[int, float], drafter=None) -> Speculator:
    """A speculator that has seen steps of these sizes take these times."""
    speculator = Speculator(drafter)
    for tokens, ms in ms_by_tokens.items():
        speculator.observe_step(tokens, ms / 1000)
    return speculator


def test_a_request_whose_guesses_fail_still_tries_one_token_now_and_then():
    speculator = _measured_speculator({1: 11.5, 2: 22.8, 4: 33.7, 16: 100.4})
    record = _record(drafts=40, right=0)  # its drafts were never right
    room = Room(seq=3, lookup=PromptLookup([7, 8, 9, 1, 7, 8, 9]), record=record, limit=8)
    drafted = [speculator.drafts([room]) for _ in range(2 * EXPLORE_EVERY)]
    tried = [i for i, drafts in enumerate(drafted) if drafts]
    assert tried == [EXPLORE_EVERY - 1, 2 * EXPLORE_EVERY - 1]
    assert drafted[tried[0]][3].tokens == [1]
    speculator.checked(record, drafted[tried[0]][3], checked=1, kept=1)
    assert record.checked[0] == 41
    no_room = Room(seq=3, lookup=room.lookup, record=record, limit=0)
    assert speculator.drafts([no_room]) == {}


def test_a_batch_of_several_slots_explores_no_more_tokens_per_step_than_one_slot():
    speculator = _measured_speculator({1: 11.5, 2: 22.8, 4: 33.7, 16: 100.4})
    rooms = [Room(seq=seq, lookup=PromptLookup([7, 8, 9, 1, 7, 8, 9]),
                  record=_record(drafts=40, right=0), limit=8) for seq in range(4)]
    steps = 4 * 4 * EXPLORE_EVERY
    explored = sum(len(speculator.drafts(rooms)) for _ in range(steps))
    assert explored == 4 * 4  # each of the four slots once every 4 * EXPLORE_EVERY steps


def _timed(ms_by_tokens: dict[int, float]) -> StepCost:
    cost = StepCost()
    for tokens, ms in ms_by_tokens.items():
        cost.observe(tokens, ms / 1000)
    return cost


def test_a_fast_draft_model_guesses_deep_and_one_as_slow_as_the_model_not_at_all():
    fast = _timed({1: 1.0, 2: 1.2, 4: 1.5})
    assert model_depth(0.95, drafting=[0, 1], fed={0: 1, 1: 1}, cost=_costly_cpu(),
                       draft_cost=fast) >= 3
    assert model_depth(0.95, drafting=[0, 1], fed={0: 1, 1: 1}, cost=_costly_cpu(),
                       draft_cost=_costly_cpu()) == 0


class _Drafter:
    """Guesses 5, 6, 7, ... for every sequence; its steps take a tenth of the model's."""

    def __init__(self):
        self.cost = _timed({1: 1.2, 2: 2.3, 4: 3.4})
        self.asked: list[tuple[list[int], int]] = []

    def guess(self, histories, depth):
        self.asked.append((sorted(histories), depth))
        return {seq: list(range(5, 5 + depth)) for seq in histories}


def test_the_draft_model_guesses_for_the_slots_their_history_has_no_draft_for():
    drafter = _Drafter()
    speculator = _measured_speculator({1: 11.5, 2: 22.8, 3: 33.0, 4: 33.7, 8: 60.0, 16: 100.4},
                                      drafter)
    quoting = Room(seq=0, lookup=PromptLookup([1, 2, 3, 4, 9, 1, 2, 3, 4]),
                   record=_record(drafts=40, right=40), limit=8)
    chatting = Room(seq=1, lookup=PromptLookup([1, 2, 3]), record=JobAcceptance(), limit=2)
    drafts = speculator.drafts([quoting, chatting])
    assert not drafts[0].from_model and drafts[0].tokens[0] == 9
    assert drafts[1].from_model and drafts[1].tokens == [5, 6]  # within its room
    assert drafter.asked[0][0] == [1]


def test_the_draft_models_record_is_its_own_and_a_poor_one_stops_it_guessing():
    drafter = _Drafter()
    speculator = _measured_speculator({1: 11.5, 2: 22.8}, drafter)
    record = JobAcceptance()
    room = Room(seq=0, lookup=PromptLookup([1, 2, 3]), record=record, limit=8)
    for _ in range(50):
        for draft in speculator.drafts([room]).values():
            speculator.checked(record, draft, checked=1, kept=0)
    assert not any(record.checked)  # a request's rates are of its history's drafts
    guessed = len(drafter.asked)
    for _ in range(EXPLORE_EVERY):
        speculator.drafts([room])
    assert len(drafter.asked) == guessed + 1  # one token now and then, to keep measuring


def test_beside_other_slots_a_draft_pays_for_a_pass_of_its_own():
    # Alone, four likely tokens are worth a step of five; beside three other slots the same
    # draft is a second pass (llama.cpp's micro-batches, with a KV buffer per sequence).
    alone, beside = _candidate(0.95, tokens=4), _candidate(0.95, tokens=4)
    plan([alone], generating=[0], cost=_costly_cpu())
    plan([beside], generating=[0, 1, 2, 3], cost=_costly_cpu())
    assert (alone.planned, beside.planned) == (4, 0)


def test_neighbours_drafting_alike_share_one_pass():
    # Drafted alone beside the others, each of these would not pay (as above); all four
    # drafting as many tokens make one pass of the step, and that does.
    quotes = [_candidate(0.95, tokens=4, seq=seq) for seq in range(4)]
    plan(quotes, generating=[0, 1, 2, 3], cost=_costly_cpu())
    assert [quote.planned for quote in quotes] == [3] * 4


def test_llama_cpp_passes_follow_runs_of_ids_and_equal_counts():
    assert micro_batches({0: 1, 1: 1, 2: 1, 3: 1}) == [4]
    assert micro_batches({5: 17}) == [17]
    assert micro_batches({0: 4, 1: 1, 2: 1}) == [3, 3]  # a draft beside other slots
    assert micro_batches({0: 1, 2: 1, 3: 1}) == [1, 2]  # an idle slot between busy ones
    assert micro_batches({1: 1, 0: 1}) == [1, 1]  # ids must run on in the order they come
    assert micro_batches({0: 3, 1: 3, 2: 1}) == [3, 4]
