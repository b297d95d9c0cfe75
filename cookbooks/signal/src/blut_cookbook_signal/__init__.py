"""The ``signal`` cookbook: a codec sweep over synthetic multichannel EEG.

Modules: :mod:`~blut_cookbook_signal.synth` (the signal), :mod:`~blut_cookbook_signal.features`
(the worker-pool feature cache), :mod:`~blut_cookbook_signal.codec` (PCA + quantization),
:mod:`~blut_cookbook_signal.evaluate` (SNR, PRD, compression ratio),
:mod:`~blut_cookbook_signal.report` (the table) and :mod:`~blut_cookbook_signal.footprints`
(predicted peak memory of each step).
"""

from __future__ import annotations

__version__ = "0.1.0"
