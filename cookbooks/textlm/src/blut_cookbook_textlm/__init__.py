"""The ``textlm`` cookbook: a character-level language model trained in numpy.

Its hooks are in :mod:`blut_cookbook_textlm.plugin`, the module its ``blut.cookbooks`` entry
point names; the recipes (``textlm:train``, ``textlm:small``) are in
:mod:`blut_cookbook_textlm.lrsweep` (their params and entry point in
:mod:`blut_cookbook_textlm.recipes`, which imports no numpy). The pieces, as plain numpy modules:
:mod:`~blut_cookbook_textlm.corpus` (the shipped public-domain texts),
:mod:`~blut_cookbook_textlm.model` (the network and its gradients, Adam),
:mod:`~blut_cookbook_textlm.train` (the loop, checkpoints, resume),
:mod:`~blut_cookbook_textlm.sample` (text from a model) and
:mod:`~blut_cookbook_textlm.footprints` (predicted peak memory of training).
"""

from __future__ import annotations

__version__ = "0.1.0"
