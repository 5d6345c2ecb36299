"""Which sampler a request gets, judged against llama.cpp's own chain on the real model's logits:
plain greedy decoding skips the chain and takes the argmax, and picks what llama.cpp's greedy
stage picks."""

import pytest

from offgrid.engine.llama import Batch, Context, Model, SamplerChain
from offgrid.engine.sampling import ArgmaxSampler, Sampler, SamplingParams, build_sampler


@pytest.fixture(scope="module")
def model(model_files):
    return Model(model_files["starter"])


@pytest.fixture(scope="module")
def decoded(model):
    """A context whose last decode left logits on 24 rows of a real prompt."""
    ctx = Context(model, n_ctx=512, n_batch=64, n_seq=1, n_threads=2)
    tokens = model.tokenize("The generator is kept in shed 3, behind the water tanks. To start "
                            "it, open the fuel valve and pull the cord twice.")[:24]
    batch = Batch(64)
    for position, token in enumerate(tokens):
        batch.add(token, position, 0, True)
    ctx.decode(batch)
    return ctx, len(tokens)


def test_plain_greedy_takes_the_argmax_and_picks_as_llama_cpp_does(model, decoded):
    ctx, rows = decoded
    sampler = build_sampler(model, SamplingParams(temperature=0))
    assert isinstance(sampler, ArgmaxSampler)
    greedy = SamplerChain().greedy()
    try:
        assert [sampler.sample(ctx, row) for row in range(rows)] == [
            greedy.sample(ctx, row) for row in range(rows)]
    finally:
        greedy.close()


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0, repeat_penalty=1.3),
    SamplingParams(temperature=0, logit_bias=((42, -100.0),)),
    SamplingParams(temperature=0, grammar='root ::= "yes" | "no"'),
    SamplingParams(temperature=0.8),
], ids=["penalties", "logit bias", "grammar", "sampled"])
def test_anything_more_than_plain_greedy_runs_the_chain(model, params):
    sampler = build_sampler(model, params)
    try:
        assert isinstance(sampler, Sampler)
    finally:
        sampler.close()
