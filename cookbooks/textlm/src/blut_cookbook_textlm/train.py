"""Training: Adam on random windows of the text, with checkpoints that resume exactly.

The batch of step ``s`` is drawn from a generator seeded by ``(seed, s)``, not from a
stream, so a run resumed from the checkpoint of step ``s`` draws the very batches the
uninterrupted run would have: with the weights and Adam's moments restored, it reaches the
same weights (the same floating-point operations in the same order).

Callbacks connect the loop to whatever runs it (a blut stage passes ``ctx.log``,
``ctx.heartbeat`` and a function that calls ``ctx.checkpoint``):

- ``log(step=…, loss=…, perplexity=…)`` after every step, with ``val_loss`` and
  ``val_perplexity`` every ``eval_every`` steps; steps are numbered from 1;
- ``heartbeat()`` after every step;
- ``save_checkpoint(state)`` every ``checkpoint_every`` steps, with a copy of the state
  (:meth:`TrainState.to_dict` makes it JSON).

A step whose loss is not finite is logged as it is (NaN or inf, for the runner to prune)
and, with ``stop_on_nonfinite``, ends the run: :attr:`TrainResult.diverged_at` is its number.

The learning rate rises linearly over the first ``warmup`` steps. Adam's first update moves
every weight by about the full learning rate at once; without the ramp even a good rate makes
the recurrence spike for a few steps (a loss of hundreds of nats, an overflowing perplexity)
before it recovers. A rate that is simply too high still overflows, ramp or not.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from blut_cookbook_textlm.corpus import Tokens, Vocabulary, fingerprint
from blut_cookbook_textlm.model import NAMES, Adam, ModelConfig, Params, init_params, loss, loss_and_grads
from blut_cookbook_textlm.procmem import limit_blas_threads, steady_heap

LogFn = Callable[..., None]


@dataclass(frozen=True)
class TrainParams:
    """One training run. ``batch × context × hidden`` sets its memory."""

    lr: float = 0.01
    steps: int = 300
    batch: int = 32
    context: int = 64
    hidden: int = 128
    seed: int = 0
    checkpoint_every: int = 0
    eval_every: int = 50
    eval_batches: int = 4
    clip: float | None = 1.0
    warmup: int = 20
    recurrent_gain: float = 0.5
    val_fraction: float = 0.1
    stop_on_nonfinite: bool = True
    blas_threads: int = 1

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if min(self.steps, self.batch, self.context, self.hidden) < 1:
            raise ValueError("steps, batch, context and hidden must be >= 1")
        if self.checkpoint_every < 0 or self.eval_every < 0 or self.warmup < 0:
            raise ValueError("checkpoint_every, eval_every and warmup must be >= 0")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def lr_at(self, step: int) -> float:
        """The learning rate of 0-based step ``step`` (linear warm-up, then constant)."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        return self.lr


def _encode_array(a: np.ndarray[Any, Any]) -> dict[str, Any]:
    data = np.ascontiguousarray(a)
    return {"dtype": data.dtype.str, "shape": list(data.shape),
            "data": base64.b64encode(data.tobytes()).decode("ascii")}


def _decode_array(d: dict[str, Any]) -> np.ndarray[Any, Any]:
    raw = base64.b64decode(d["data"])
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()


@dataclass
class TrainState:
    """Everything needed to go on: weights, Adam's moments, the step count, the history."""

    step: int
    params: Params
    m: Params
    v: Params
    adam_t: int
    vocab: str
    text_hash: str
    hidden: int
    losses: list[float] = field(default_factory=list)

    def copy(self) -> TrainState:
        """A deep copy (the arrays are copied)."""
        return replace(self, params={k: a.copy() for k, a in self.params.items()},
                       m={k: a.copy() for k, a in self.m.items()},
                       v={k: a.copy() for k, a in self.v.items()}, losses=list(self.losses))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; arrays are base64 of their exact bytes, so nothing is rounded."""
        return {"step": self.step, "adam_t": self.adam_t, "vocab": self.vocab,
                "text_hash": self.text_hash, "hidden": self.hidden,
                "losses": [x if math.isfinite(x) else repr(x) for x in self.losses],
                "params": {k: _encode_array(self.params[k]) for k in NAMES},
                "m": {k: _encode_array(self.m[k]) for k in NAMES},
                "v": {k: _encode_array(self.v[k]) for k in NAMES}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        """Inverse of :meth:`to_dict`."""
        return cls(step=int(d["step"]), adam_t=int(d["adam_t"]), vocab=d["vocab"],
                   text_hash=d["text_hash"], hidden=int(d["hidden"]),
                   losses=[float(x) for x in d.get("losses", [])],
                   params={k: _decode_array(d["params"][k]) for k in NAMES},
                   m={k: _decode_array(d["m"][k]) for k in NAMES},
                   v={k: _decode_array(d["v"][k]) for k in NAMES})


@dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    state: TrainState
    diverged_at: int | None
    final_loss: float
    val_loss: float | None


def perplexity(nats: float) -> float:
    """``exp(loss)``; inf when it overflows, NaN for a NaN loss."""
    if math.isnan(nats):
        return math.nan
    return math.exp(nats) if nats < 709.0 else math.inf


def batch_at(data: Tokens, step: int, batch: int, context: int, seed: int,
             stream: int = 1) -> tuple[Tokens, Tokens]:
    """Inputs and targets ``(batch, context)`` of step ``step``: a function of its arguments only."""
    if len(data) < context + 2:
        raise ValueError(f"{len(data)} tokens are too few for a context of {context}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, step]))
    starts = rng.integers(0, len(data) - context - 1, size=batch)
    idx = starts[:, None] + np.arange(context)
    return data[idx], data[idx + 1]


def validation_loss(params: Params, data: Tokens, p: TrainParams) -> float:
    """Mean loss over ``eval_batches`` fixed batches of the validation text."""
    context = min(p.context, len(data) - 2)
    values = [loss(params, *batch_at(data, i, p.batch, context, p.seed, stream=2))
              for i in range(p.eval_batches)]
    return float(np.mean(values))


def split(data: Tokens, val_fraction: float) -> tuple[Tokens, Tokens]:
    """Training tokens (the start) and validation tokens (the end)."""
    cut = int(len(data) * (1.0 - val_fraction))
    return data[:cut], data[cut:]


def initial_state(text: str, p: TrainParams) -> TrainState:
    """Step 0: seeded weights, zero moments."""
    vocab = Vocabulary.of(text)
    params = init_params(ModelConfig(vocab=len(vocab), hidden=p.hidden,
                                     recurrent_gain=p.recurrent_gain, seed=p.seed))
    zeros = {k: np.zeros_like(a) for k, a in params.items()}
    return TrainState(step=0, params=params, m=zeros, v={k: a.copy() for k, a in zeros.items()},
                      adam_t=0, vocab=vocab.chars, text_hash=fingerprint(text), hidden=p.hidden)


def train(text: str, p: TrainParams, *, log: LogFn | None = None,
          heartbeat: Callable[[], None] | None = None,
          save_checkpoint: Callable[[TrainState], None] | None = None,
          resume: TrainState | None = None) -> TrainResult:
    """Train on ``text`` for ``p.steps`` steps (from ``resume``'s step, if given)."""
    steady_heap()
    limit_blas_threads(p.blas_threads)
    state = resume.copy() if resume is not None else initial_state(text, p)
    if resume is not None and (state.text_hash, state.hidden) != (fingerprint(text), p.hidden):
        raise ValueError("the checkpoint was trained on another text or with another hidden size")
    vocab = Vocabulary(state.vocab)
    train_data, val_data = split(vocab.encode(text), p.val_fraction)
    opt = Adam(state.params, clip=p.clip)
    opt.m, opt.v, opt.t = state.m, state.v, state.adam_t
    diverged: int | None = None
    last = math.nan
    val: float | None = None
    for s in range(state.step, p.steps):
        x, y = batch_at(train_data, s, p.batch, p.context, p.seed)
        value, grads = loss_and_grads(state.params, x, y)
        last = value
        metrics: dict[str, float] = {"loss": value, "perplexity": perplexity(value)}
        if not math.isfinite(value):
            diverged = s + 1 if diverged is None else diverged
            if log is not None:
                log(step=s + 1, **metrics)
            if p.stop_on_nonfinite:
                break
        opt.step(state.params, grads, p.lr_at(s))
        del grads
        state.step, state.adam_t = s + 1, opt.t
        state.losses.append(value)
        if p.eval_every and state.step % p.eval_every == 0 and math.isfinite(value):
            val = validation_loss(state.params, val_data, p)
            metrics.update(val_loss=val, val_perplexity=perplexity(val))
        if log is not None and math.isfinite(value):
            log(step=s + 1, **metrics)
        if heartbeat is not None:
            heartbeat()
        if save_checkpoint is not None and p.checkpoint_every and state.step % p.checkpoint_every == 0:
            save_checkpoint(state.copy())
    if val is None and diverged is None and state.step > 0:
        val = validation_loss(state.params, val_data, p)
    return TrainResult(state=state, diverged_at=diverged, final_loss=last, val_loss=val)
