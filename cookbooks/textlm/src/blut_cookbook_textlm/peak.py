"""Measure what training really holds: run it in a fresh process, read the kernel's peak.

``python -m blut_cookbook_textlm.peak STEP JSON`` runs one step (:data:`STEPS`) with the
arguments in ``JSON`` and prints one JSON line with the process's peak resident set
(``VmHWM``, read at the end). :func:`measure` does that from Python; the footprint tests
compare the peaks with :mod:`blut_cookbook_textlm.footprints`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from blut_cookbook_textlm.procmem import peak_rss


@dataclass(frozen=True)
class Measured:
    """The peak of one run of a step, in bytes."""

    step: str
    peak: int


def _train(args: Mapping[str, Any]) -> None:
    from blut_cookbook_textlm.corpus import load_text
    from blut_cookbook_textlm.train import TrainParams, TrainState, train

    out = args.get("checkpoint")

    def save(state: TrainState) -> None:  # as a blut stage's ctx.checkpoint does: one JSON text
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(state.to_dict()))

    result = train(load_text(), TrainParams(**args["params"]), save_checkpoint=save)
    save(result.state)


def _sample(args: Mapping[str, Any]) -> None:
    from blut_cookbook_textlm.corpus import Vocabulary
    from blut_cookbook_textlm.sample import sample
    from blut_cookbook_textlm.train import TrainState

    with open(args["checkpoint"], encoding="utf-8") as fh:
        state = TrainState.from_dict(json.load(fh))
    sample(state.params, Vocabulary(state.vocab), length=int(args.get("length", 200)))


#: The memory-spending steps, by name.
STEPS: dict[str, Callable[[Mapping[str, Any]], None]] = {"train": _train, "sample": _sample}


def measure(step: str, args: Mapping[str, Any], *, timeout: float = 300.0) -> Measured:
    """Run ``step`` in a fresh interpreter and return its peak."""
    if step not in STEPS:
        raise KeyError(f"unknown step {step!r}; known: {', '.join(STEPS)}")
    proc = subprocess.run([sys.executable, "-m", __name__, step, json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"step {step} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Measured(step=step, peak=int(data["peak"]))


def main(argv: list[str]) -> int:
    """``STEP JSON``: run the step, print its peak as one JSON line."""
    step, raw = argv
    STEPS[step](json.loads(raw))
    print(json.dumps({"step": step, "peak": peak_rss()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
