"""A character-level recurrent language model in numpy, with its gradients written out.

An Elman network with ReLU units: for a batch of ``B`` sequences of ``T`` characters,

    a_t = W_xh[x_t] + h_{t-1} · W_hh + b_h        h_t = max(a_t, 0)        (h_0 = 0)
    z_t = h_t · W_hy + b_y                         p_t = softmax(z_t)
    loss = mean over B·T of −log p_t[y_t]          (y_t = x_{t+1})

Backpropagation through time keeps every ``h_t`` — ``B × T × hidden`` numbers — and the
gradient of each; the output layer keeps ``B × T × vocab`` probabilities. Memory therefore
grows with ``batch × context × hidden`` (see :func:`blut_cookbook_textlm.footprints.train_footprint`).

The network computes in float32, as training frameworks do. ReLU units do not saturate, so
activations can grow geometrically along the sequence when ``W_hh`` grows: with too high a
learning rate Adam pushes the weights up by about ``lr`` a step, the recurrence overflows
float32, and the loss becomes inf or NaN — a divergence that is real, not staged. Gradient
clipping (:class:`Adam` ``clip``) is optional; it bounds a step's direction, not Adam's step
size, so it does not stop that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.floating]
Tokens = npt.NDArray[np.int32]
Params = dict[str, Array]

#: The parameters, in a fixed order (checkpoints and optimizer state follow it).
NAMES: tuple[str, ...] = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


@dataclass(frozen=True)
class ModelConfig:
    """Shape and initialization of a model."""

    vocab: int
    hidden: int = 128
    recurrent_gain: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.vocab < 2 or self.hidden < 1:
            raise ValueError(f"need vocab >= 2 and hidden >= 1, got {self.vocab}, {self.hidden}")


def init_params(config: ModelConfig, dtype: type[np.floating] = np.float32) -> Params:
    """Seeded initial weights: a scaled orthogonal ``W_hh``, small input and output weights."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 11]))
    v, h = config.vocab, config.hidden
    q, r = np.linalg.qr(rng.standard_normal((h, h)))
    q *= np.sign(np.diag(r))
    return {
        "W_xh": (rng.standard_normal((v, h)) * 0.3).astype(dtype),
        "W_hh": (config.recurrent_gain * q).astype(dtype),
        "b_h": np.full(h, 0.05, dtype=dtype),
        "W_hy": (rng.standard_normal((h, v)) / math.sqrt(h)).astype(dtype),
        "b_y": np.zeros(v, dtype=dtype),
    }


def _hidden_states(params: Params, x: Tokens) -> Array:
    """``h_0..h_T`` for inputs ``x`` ``(B, T)``, time-major: ``(T + 1, B, hidden)``."""
    w_xh, w_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
    b, t_len = x.shape
    hs = np.zeros((t_len + 1, b, w_hh.shape[0]), dtype=w_hh.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(t_len):
            a = hs[t] @ w_hh
            a += w_xh[x[:, t]]
            a += b_h
            np.maximum(a, 0, out=hs[t + 1])
    return hs


def _log_softmax_rows(z: Array) -> Array:
    """Stable log-softmax of each row, in place (non-finite rows stay non-finite)."""
    z -= z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


def loss(params: Params, x: Tokens, y: Tokens) -> float:
    """Mean cross-entropy (nats per character) of predicting ``y`` from ``x``."""
    hs = _hidden_states(params, x)
    t_len, b = x.shape[1], x.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        z = hs[1:].reshape(t_len * b, -1) @ params["W_hy"]
        z += params["b_y"]
        logp = _log_softmax_rows(z)
    picked = logp[np.arange(t_len * b), y.T.reshape(-1)]
    return float(-picked.mean(dtype=np.float64))


def loss_and_grads(params: Params, x: Tokens, y: Tokens) -> tuple[float, Params]:
    """The loss and its gradient with respect to every parameter (backprop through time)."""
    w_hh, w_hy = params["W_hh"], params["W_hy"]
    b, t_len = x.shape
    n = b * t_len
    hs = _hidden_states(params, x)
    h_flat = hs[1:].reshape(n, -1)
    targets = y.T.reshape(-1)
    rows = np.arange(n)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        z = h_flat @ w_hy
        z += params["b_y"]
        logp = _log_softmax_rows(z)
        value = float(-logp[rows, targets].mean(dtype=np.float64))
        # dL/dz = (softmax − onehot) / n, computed in the same buffer
        probs = np.exp(logp, out=logp)
        probs[rows, targets] -= 1.0
        probs /= n
        grads: Params = {"W_hy": h_flat.T @ probs, "b_y": probs.sum(axis=0)}
        dh_all = (probs @ w_hy.T).reshape(t_len, b, -1)
        del probs, z, logp
        d_whh = np.zeros_like(w_hh)
        d_bh = np.zeros_like(params["b_h"])
        carry = np.zeros((b, w_hh.shape[0]), dtype=w_hh.dtype)
        for t in range(t_len - 1, -1, -1):
            da = dh_all[t]
            da += carry
            da *= hs[t + 1] > 0
            d_whh += hs[t].T @ da
            d_bh += da.sum(axis=0)
            carry = da @ w_hh.T
        d_wxh = np.zeros_like(params["W_xh"])
        np.add.at(d_wxh, x.T.reshape(-1), dh_all.reshape(n, -1))
    grads.update({"W_xh": d_wxh, "W_hh": d_whh, "b_h": d_bh})
    return value, grads


def global_norm(grads: Params) -> float:
    """``sqrt(Σ g²)`` over every gradient (inf or NaN if any is)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


class Adam:
    """Adam with bias correction; optional clipping of the gradients' global norm."""

    def __init__(self, params: Params, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 clip: float | None = None) -> None:
        self.beta1, self.beta2, self.eps, self.clip = beta1, beta2, eps, clip
        self.t = 0
        self.m: Params = {k: np.zeros_like(v) for k, v in params.items()}
        self.v: Params = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: Params, grads: Params, lr: float) -> float:
        """Update ``params`` in place; returns the gradients' global norm before clipping."""
        norm = global_norm(grads)
        scale = 1.0
        if self.clip is not None and math.isfinite(norm) and norm > self.clip:
            scale = self.clip / norm
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        corr1 = 1.0 - b1**self.t
        corr2 = 1.0 - b2**self.t
        with np.errstate(over="ignore", invalid="ignore"):
            for k, p in params.items():
                g = grads[k] * scale if scale != 1.0 else grads[k]
                m, v = self.m[k], self.v[k]
                m *= b1
                m += (1.0 - b1) * g
                v *= b2
                v += (1.0 - b2) * (g * g)
                update = m / corr1
                update /= np.sqrt(v / corr2) + self.eps
                update *= lr
                p -= update
        return norm
