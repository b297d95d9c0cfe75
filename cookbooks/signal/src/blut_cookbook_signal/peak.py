"""Measure what a step really holds: run it in a fresh process, read the kernel's peak.

``python -m blut_cookbook_signal.peak STEP JSON`` runs one memory-spending step
(:data:`STEPS`) with the arguments in ``JSON`` and prints one JSON line: the process's peak
resident set (``VmHWM``, read at the end), the peaks its pool workers reported, and their
sum. :func:`measure` does that from Python. The footprint tests compare these peaks with
:mod:`blut_cookbook_signal.footprints`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from blut_cookbook_signal.procmem import peak_rss


@dataclass(frozen=True)
class Measured:
    """Peaks of one run of a step, in bytes."""

    step: str
    process_peak: int
    worker_peaks: list[int] = field(default_factory=list)

    @property
    def peak(self) -> int:
        """The process's peak plus every worker's: a bound on what they held at once."""
        return self.process_peak + sum(self.worker_peaks)


def _synth(args: Mapping[str, Any]) -> list[int]:
    from blut_cookbook_signal.synth import SynthParams, synthesize

    synthesize(args["out_dir"], SynthParams(**args["params"]))
    return []


def _features(args: Mapping[str, Any]) -> list[int]:
    from blut_cookbook_signal.features import FeatureParams, compute_features

    result = compute_features(args["signal"], args["out_dir"], float(args["fs"]),
                              FeatureParams(**args["params"]))
    return result.worker_peaks


def _codec_train(args: Mapping[str, Any]) -> list[int]:
    from blut_cookbook_signal.codec import CodecConfig, train_codec
    from blut_cookbook_signal.npyio import SignalReader

    with SignalReader(args["signal"]) as reader:
        model = train_codec(reader, CodecConfig(**args["config"]))
    model.save(args["model"])
    return []


def _codec_eval(args: Mapping[str, Any]) -> list[int]:
    from blut_cookbook_signal.codec import CodecModel
    from blut_cookbook_signal.evaluate import evaluate_codec
    from blut_cookbook_signal.features import load_features
    from blut_cookbook_signal.npyio import SignalReader

    model = CodecModel.load(args["model"])
    info, cache = load_features(args["features"]) if args.get("features") else (None, None)
    with SignalReader(args["signal"]) as reader:
        evaluate_codec(model, reader, batch=args.get("batch"), features=cache,
                       fs=info.fs if info else 256.0, feature_window=info.window if info else 0,
                       feature_hop=info.hop if info else 0)
    return []


#: The memory-spending steps, by name: each returns the peaks of the workers it started.
STEPS: dict[str, Callable[[Mapping[str, Any]], list[int]]] = {
    "synth": _synth, "features": _features, "codec_train": _codec_train, "codec_eval": _codec_eval,
}


def measure(step: str, args: Mapping[str, Any], *, timeout: float = 300.0) -> Measured:
    """Run ``step`` in a fresh interpreter and return its peaks."""
    if step not in STEPS:
        raise KeyError(f"unknown step {step!r}; known: {', '.join(STEPS)}")
    proc = subprocess.run([sys.executable, "-m", __name__, step, json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"step {step} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Measured(step=step, process_peak=int(data["process_peak"]),
                    worker_peaks=[int(p) for p in data["worker_peaks"]])


def main(argv: list[str]) -> int:
    """``STEP JSON``: run the step, print its peaks as one JSON line."""
    step, raw = argv
    workers = STEPS[step](json.loads(raw))
    print(json.dumps({"step": step, "process_peak": peak_rss(), "worker_peaks": workers}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
