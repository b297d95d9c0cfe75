"""The network: its hand-written gradients are the true ones, and Adam makes it learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from blut_cookbook_textlm.model import (
    NAMES,
    Adam,
    ModelConfig,
    global_norm,
    init_params,
    loss,
    loss_and_grads,
)


def _batch(vocab: int, b: int, t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, size=(b, t)).astype(np.int32)
    y = rng.integers(0, vocab, size=(b, t)).astype(np.int32)
    return x, y


def test_gradients_match_finite_differences() -> None:
    params = init_params(ModelConfig(vocab=6, hidden=5, seed=3), dtype=np.float64)
    x, y = _batch(6, 3, 7, 0)
    value, grads = loss_and_grads(params, x, y)
    assert value == pytest.approx(loss(params, x, y))
    assert set(grads) == set(NAMES)
    eps = 1e-6
    for name in NAMES:
        p = params[name]
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = loss(params, x, y)
            p[idx] = old - eps
            down = loss(params, x, y)
            p[idx] = old
            numeric = (up - down) / (2 * eps)
            assert grads[name][idx] == pytest.approx(numeric, rel=1e-4, abs=1e-8), (name, idx)


def test_initial_loss_is_about_log_vocab_and_float32() -> None:
    params = init_params(ModelConfig(vocab=50, hidden=32))
    assert all(p.dtype == np.float32 for p in params.values())
    x, y = _batch(50, 8, 16, 1)
    assert loss(params, x, y) == pytest.approx(math.log(50), rel=0.1)


def test_adam_learns_a_fixed_batch_and_clipping_is_optional() -> None:
    for clip in (None, 0.5):
        params = init_params(ModelConfig(vocab=10, hidden=16, seed=1))
        opt = Adam(params, clip=clip)
        x, y = _batch(10, 4, 12, 2)
        first = loss(params, x, y)
        for _ in range(60):
            _, grads = loss_and_grads(params, x, y)
            norm = opt.step(params, grads, 0.01)
            assert math.isfinite(norm)
        assert loss(params, x, y) < first - 0.5
        assert opt.t == 60


def test_a_too_high_learning_rate_overflows_float32() -> None:
    params = init_params(ModelConfig(vocab=10, hidden=64, seed=0))
    opt = Adam(params, clip=1.0)
    x, y = _batch(10, 8, 32, 3)
    values = []
    for _ in range(3):
        value, grads = loss_and_grads(params, x, y)
        values.append(value)
        opt.step(params, grads, 10.0)
    assert math.isfinite(values[0]) and not math.isfinite(values[-1])
    assert not math.isfinite(global_norm(loss_and_grads(params, x, y)[1]))


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="vocab"):
        ModelConfig(vocab=1)
