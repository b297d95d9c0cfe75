"""Text from a trained model: feed a prompt, then draw one character at a time.

``temperature`` divides the logits before the softmax: below 1 the model keeps to its most
likely characters, above 1 it wanders; 0 always takes the most likely one. The draw is
seeded, so a model, a prompt, a temperature and a seed give one text.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from blut_cookbook_textlm.corpus import Vocabulary
from blut_cookbook_textlm.model import Array, Params


def _step(params: Mapping[str, Array], h: Array, token: int) -> Array:
    a = params["W_xh"][token] + h @ params["W_hh"] + params["b_h"]
    out: Array = np.maximum(a, 0.0)
    return out


def sample(params: Params, vocab: Vocabulary, *, prompt: str = "", length: int = 200,
           temperature: float = 0.8, seed: int = 0) -> str:
    """``length`` characters following ``prompt`` (which is not repeated in the result)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 21]))
    hidden = params["W_hh"].shape[0]
    h: Array = np.zeros(hidden, dtype=np.float64)
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    start = prompt or ("\n" if "\n" in vocab.chars else vocab.chars[0])
    for token in vocab.encode(start):
        h = _step(p64, h, int(token))
    out: list[int] = []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(length):
            logits = h @ p64["W_hy"] + p64["b_y"]
            if not np.all(np.isfinite(logits)):
                raise ValueError("the model's outputs are not finite (a diverged model)")
            if temperature == 0:
                token = int(np.argmax(logits))
            else:
                z = logits / temperature
                z -= z.max()
                probs = np.exp(z)
                probs /= probs.sum()
                token = int(rng.choice(len(probs), p=probs))
            out.append(token)
            h = _step(p64, h, token)
    return vocab.decode(out)
