"""The ``signal`` cookbook: a codec sweep over synthetic multichannel EEG.

Its hooks are in :mod:`blut_cookbook_signal.plugin`, the module its ``blut.cookbooks`` entry
point names; the recipes (``signal:sweep``, ``signal:tiny``) are in
:mod:`blut_cookbook_signal.sweep` (their params and entry point in
:mod:`blut_cookbook_signal.recipes`, which imports no numpy). The steps, as plain numpy modules:
:mod:`~blut_cookbook_signal.synth` (the signal), :mod:`~blut_cookbook_signal.features`
(the worker-pool feature cache), :mod:`~blut_cookbook_signal.codec` (PCA + quantization),
:mod:`~blut_cookbook_signal.evaluate` (SNR, PRD, compression ratio),
:mod:`~blut_cookbook_signal.report` (the table) and :mod:`~blut_cookbook_signal.footprints`
(predicted peak memory of each step).
"""

from __future__ import annotations

__version__ = "0.1.0"
