"""Samples: seeded, temperature-controlled, and more like the text after training."""

from __future__ import annotations

import pytest
from blut_cookbook_textlm.corpus import Vocabulary, load_text
from blut_cookbook_textlm.model import Params
from blut_cookbook_textlm.sample import sample
from blut_cookbook_textlm.train import TrainParams, initial_state, train

Trained = tuple[Params, Vocabulary]


@pytest.fixture(scope="module")
def trained() -> Trained:
    text = load_text()
    result = train(text, TrainParams(batch=16, context=32, hidden=64, steps=80, lr=0.01, eval_every=0))
    return result.state.params, Vocabulary(result.state.vocab)


def test_same_seed_same_text_other_seed_other_text(trained: Trained) -> None:
    params, vocab = trained
    a = sample(params, vocab, prompt="The ", length=120, temperature=0.8, seed=1)
    b = sample(params, vocab, prompt="The ", length=120, temperature=0.8, seed=1)
    c = sample(params, vocab, prompt="The ", length=120, temperature=0.8, seed=2)
    assert a == b != c and len(a) == 120 and set(a) <= set(vocab.chars)


def test_temperature_zero_is_greedy_and_ignores_the_seed(trained: Trained) -> None:
    params, vocab = trained
    g1 = sample(params, vocab, prompt="And ", length=60, temperature=0, seed=1)
    g2 = sample(params, vocab, prompt="And ", length=60, temperature=0, seed=9)
    assert g1 == g2


def test_training_makes_samples_more_like_english(trained: Trained) -> None:
    params, vocab = trained
    text = load_text()
    untrained = initial_state(text, TrainParams(hidden=64)).params

    def letters_and_spaces(s: str) -> float:
        return sum(ch.isalpha() or ch == " " for ch in s) / len(s)

    before = sample(untrained, vocab, length=400, temperature=1.0, seed=3)
    after = sample(params, vocab, length=400, temperature=1.0, seed=3)
    assert letters_and_spaces(after) > letters_and_spaces(before) + 0.1
    assert after.count(" ") > 30


def test_a_diverged_model_cannot_be_sampled() -> None:
    text = load_text()
    result = train(text, TrainParams(batch=16, context=32, hidden=64, steps=5, lr=10.0, warmup=10,
                                     stop_on_nonfinite=False, eval_every=0))
    with pytest.raises(ValueError, match="not finite"):
        sample(result.state.params, Vocabulary(result.state.vocab), length=10)
    with pytest.raises(ValueError, match="temperature"):
        sample(result.state.params, Vocabulary(result.state.vocab), temperature=-1)
