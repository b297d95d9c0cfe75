"""The text the model learns: public-domain works shipped inside the package.

``texts/`` holds plain UTF-8 files (see the cookbook's README for what each one is and
where it comes from); :func:`load_text` joins them, each followed by a blank line, in file
name order. :class:`Vocabulary` maps characters to token ids and back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import numpy as np
import numpy.typing as npt

Tokens = npt.NDArray[np.int32]


def text_names() -> list[str]:
    """The shipped text files, in the order :func:`load_text` joins them."""
    root = resources.files("blut_cookbook_textlm") / "texts"
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".txt"))


def load_text(names: Iterable[str] | None = None) -> str:
    """The shipped texts (or those named), joined with blank lines."""
    root = resources.files("blut_cookbook_textlm") / "texts"
    parts = [(root / name).read_text(encoding="utf-8").strip("\n") for name in (names or text_names())]
    return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class Vocabulary:
    """The characters a model knows, in a fixed order."""

    chars: str

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        """Every distinct character of ``text``, sorted."""
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tokens:
        """Token ids of ``text`` (every character must be known)."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, tokens: Iterable[int]) -> str:
        """The text of token ids."""
        return "".join(self.chars[int(t)] for t in tokens)


def fingerprint(text: str) -> str:
    """A short content hash of ``text`` (a checkpoint names the text it was trained on)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
