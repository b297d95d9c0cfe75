"""Training: which learning rates converge and which diverge, callbacks, exact resume."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from blut_cookbook_textlm.corpus import Vocabulary, load_text, text_names
from blut_cookbook_textlm.train import TrainParams, TrainResult, TrainState, batch_at, perplexity, train

TINY: dict[str, Any] = {"batch": 16, "context": 32, "hidden": 64, "eval_every": 10, "eval_batches": 2,
                        "warmup": 10}


@pytest.fixture(scope="module")
def text() -> str:
    return load_text()


def _run(text: str, **kw: Any) -> tuple[TrainResult, list[dict[str, Any]]]:
    logged: list[dict[str, Any]] = []
    result = train(text, TrainParams(**{**TINY, **kw}), log=lambda **m: logged.append(m))
    return result, logged


def test_the_shipped_text_is_real_and_plain(text: str) -> None:
    assert 50_000 <= len(text.encode()) <= 150_000
    assert len(text_names()) >= 5
    assert text.isascii()
    assert "Four score and seven years ago" in text and "Nevermore" in text
    vocab = Vocabulary.of(text)
    assert vocab.decode(vocab.encode(text[:500])) == text[:500]
    with pytest.raises(ValueError, match="vocabulary"):
        vocab.encode("é")


@pytest.mark.parametrize("lr", [0.003, 0.01])
def test_sensible_learning_rates_converge(text: str, lr: float) -> None:
    result, logged = _run(text, lr=lr, steps=60)
    assert result.diverged_at is None and result.state.step == 60
    losses = result.state.losses
    assert np.mean(losses[-10:]) < losses[0] - 1.0   # from ~4.3 nats to ~3 or below
    assert result.val_loss is not None and result.val_loss < losses[0] - 1.0
    assert [m["step"] for m in logged] == list(range(1, 61))
    assert all(m["perplexity"] == pytest.approx(math.exp(m["loss"])) for m in logged)
    assert max(losses) < 709  # no spike: the perplexity never overflowed
    assert [m["step"] for m in logged if "val_loss" in m] == [10, 20, 30, 40, 50, 60]


def test_a_too_high_learning_rate_diverges_to_nan_at_step_2_every_time(text: str) -> None:
    for _ in range(2):
        result, logged = _run(text, lr=10.0, steps=60)
        assert result.diverged_at == 2
        assert [m["step"] for m in logged] == [1, 2]
        assert math.isfinite(logged[0]["loss"]) and math.isnan(logged[-1]["loss"])
        assert math.isnan(logged[-1]["perplexity"])
        assert result.state.step == 1


def test_divergence_can_be_logged_without_stopping(text: str) -> None:
    result, logged = _run(text, lr=10.0, steps=5, stop_on_nonfinite=False)
    assert result.diverged_at == 2 and result.state.step == 5
    assert all(math.isnan(m["loss"]) for m in logged[1:])


def test_resume_from_a_checkpoint_reaches_the_same_weights(text: str) -> None:
    whole = train(text, TrainParams(**TINY, lr=0.01, steps=40))
    saved: list[TrainState] = []
    beats: list[int] = []
    first = train(text, TrainParams(**TINY, lr=0.01, steps=40, checkpoint_every=20),
                  save_checkpoint=saved.append, heartbeat=lambda: beats.append(1))
    assert [s.step for s in saved] == [20, 40] and len(beats) == 40
    # the checkpoint goes through JSON, as a blut stage's ctx.checkpoint stores it
    state = TrainState.from_dict(json.loads(json.dumps(saved[0].to_dict())))
    assert state.step == 20 and len(state.losses) == 20
    resumed = train(text, TrainParams(**TINY, lr=0.01, steps=40), resume=state)
    assert resumed.state.step == 40
    for name, value in whole.state.params.items():
        np.testing.assert_allclose(resumed.state.params[name], value, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(first.state.params[name], value, rtol=1e-6, atol=1e-7)
    assert resumed.state.losses == pytest.approx(whole.state.losses)
    assert resumed.state.adam_t == whole.state.adam_t == 40


def test_resume_refuses_another_text_or_shape(text: str) -> None:
    state = train(text, TrainParams(**TINY, steps=2)).state
    with pytest.raises(ValueError, match="another text"):
        train(text[:-100], TrainParams(**TINY, steps=4), resume=state)
    with pytest.raises(ValueError, match="hidden"):
        train(text, TrainParams(**{**TINY, "hidden": 32}, steps=4), resume=state)


def test_batches_are_a_function_of_seed_and_step(text: str) -> None:
    data = Vocabulary.of(text).encode(text)
    x1, y1 = batch_at(data, 7, 4, 10, seed=1)
    x2, _ = batch_at(data, 7, 4, 10, seed=1)
    x3, _ = batch_at(data, 8, 4, 10, seed=1)
    assert np.array_equal(x1, x2) and not np.array_equal(x1, x3)
    assert np.array_equal(x1[:, 1:], y1[:, :-1])
    assert perplexity(1000.0) == math.inf and math.isnan(perplexity(math.nan))


def test_bad_params_are_refused() -> None:
    with pytest.raises(ValueError, match="lr"):
        TrainParams(lr=0)
    with pytest.raises(ValueError, match="val_fraction"):
        TrainParams(val_fraction=1.0)
    assert TrainParams(lr=1.0, warmup=4).lr_at(0) == 0.25
