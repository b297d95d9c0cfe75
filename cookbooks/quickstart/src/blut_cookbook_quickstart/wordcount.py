"""``quickstart:wordcount``: six stages, files in and files out.

    generate ──> tokenize ──> sort (command) ──> count ──┐
                        └──────────────────> bigrams ──┴─> report
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from typing import TYPE_CHECKING

import attrs

from blut_core import Footprint, Plan, RetryOn, RetryPolicy, Stage

if TYPE_CHECKING:
    from blut_core import StageContext

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "du", "fa", "go"]


@attrs.frozen(kw_only=True)
class ReportParams:
    title: str = attrs.field(default="Word count", metadata={"help": "Heading of the report."})
    top: int = attrs.field(default=20, validator=attrs.validators.ge(1),
                           metadata={"help": "How many words and bigrams to list."})


@attrs.frozen(kw_only=True)
class WordcountParams:
    docs: int = attrs.field(default=200, validator=attrs.validators.ge(1),
                            metadata={"help": "Documents to generate."})
    words_per_doc: int = attrs.field(default=400, validator=attrs.validators.ge(1),
                                     metadata={"help": "Words in each document."})
    vocabulary: int = attrs.field(default=2000, validator=attrs.validators.ge(10),
                                  metadata={"help": "Distinct words to draw from."})
    seed: int = attrs.field(default=0, metadata={"help": "Random seed of the corpus."})
    report: ReportParams = attrs.field(factory=ReportParams)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))


def generate(ctx: StageContext) -> None:
    """Write ``docs`` text files of Zipf-distributed words."""
    p = ctx.params
    rng = random.Random(p["seed"])
    vocab = sorted({_word(rng) for _ in range(p["vocabulary"] * 3)})
    rng.shuffle(vocab)
    vocab = vocab[: p["vocabulary"]]
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    docs = ctx.out_dir / "docs"
    docs.mkdir()
    for i in range(p["docs"]):
        words = rng.choices(vocab, weights=weights, k=p["words_per_doc"])
        lines = [" ".join(words[j:j + 12]).capitalize() + "." for j in range(0, len(words), 12)]
        (docs / f"doc{i:05d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if i % 50 == 0:
            ctx.heartbeat(done=i)
    ctx.log(documents=p["docs"])


def tokenize(ctx: StageContext) -> None:
    """One lower-case token per line, across all documents, in document order."""
    docs = sorted((ctx.input("generate") / "docs").iterdir())
    n = 0
    with (ctx.out_dir / "tokens.txt").open("w", encoding="utf-8") as out:
        for doc in docs:
            for token in doc.read_text(encoding="utf-8").split():
                word = token.strip(".,;:!?").lower()
                if word:
                    out.write(word + "\n")
                    n += 1
    ctx.log(tokens=n)


def count(ctx: StageContext) -> None:
    """Count runs of equal lines in the sorted token file (it is sorted: one pass)."""
    counts: Counter[str] = Counter()
    with (ctx.input("sort") / "sorted.txt").open(encoding="utf-8") as fh:
        for line in fh:
            counts[line.rstrip("\n")] += 1
    top = counts.most_common()
    (ctx.out_dir / "counts.json").write_text(json.dumps(top), encoding="utf-8")
    ctx.log(distinct=len(top), total=sum(counts.values()))


def bigrams(ctx: StageContext) -> None:
    """Count adjacent token pairs."""
    tokens = (ctx.input("tokenize") / "tokens.txt").read_text(encoding="utf-8").split("\n")
    pairs = Counter(itertools.pairwise(tokens))
    top = [[f"{a} {b}", n] for (a, b), n in pairs.most_common(ctx.params["top"]) if a and b]
    (ctx.out_dir / "bigrams.json").write_text(json.dumps(top), encoding="utf-8")
    ctx.log(distinct=len(pairs))


def report(ctx: StageContext) -> None:
    """Merge both branches into ``report.md``."""
    p = ctx.params
    words = json.loads((ctx.input("count") / "counts.json").read_text(encoding="utf-8"))
    pairs = json.loads((ctx.input("bigrams") / "bigrams.json").read_text(encoding="utf-8"))
    lines = [f"# {p['title']}", "", f"{sum(n for _, n in words)} words, "
             f"{len(words)} distinct.", "", "## Top words", ""]
    lines += [f"{i + 1}. {w}: {n}" for i, (w, n) in enumerate(words[: p["top"]])]
    lines += ["", "## Top bigrams", ""]
    lines += [f"{i + 1}. {w}: {n}" for i, (w, n) in enumerate(pairs[: p["top"]])]
    (ctx.out_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(params: WordcountParams) -> Plan:
    """The wordcount DAG for ``params``.

    Streaming stages declare a small fixed footprint. ``sort`` and ``bigrams`` hold the whole
    corpus, so theirs scales with its size: the ``words`` driver makes both the estimate and
    the calibration key follow ``docs × words_per_doc`` (a corpus ten times larger is not
    admitted at a peak measured on a small one). ``bigrams`` retries an OOM kill with an
    escalated cap.
    """
    small = Footprint.fixed("256M")
    words = params.docs * params.words_per_doc
    corpus = Footprint.scaling("64M", {"words": "512"}, drivers={"words": words})
    return Plan.of(
        Stage.call("generate", generate, footprint=small,
                   params={"docs": params.docs, "words_per_doc": params.words_per_doc,
                           "vocabulary": params.vocabulary, "seed": params.seed}),
        Stage.call("tokenize", tokenize, inputs=["generate"], footprint=small),
        Stage.command("sort", ["sort", "-o", "{out}/sorted.txt", "{inputs[tokenize]}/tokens.txt"],
                      inputs=["tokenize"], env={"LC_ALL": "C"}, footprint=corpus),
        Stage.call("count", count, inputs=["sort"], footprint=small),
        Stage.call("bigrams", bigrams, inputs=["tokenize"], params={"top": params.report.top},
                   footprint=corpus, retry=RetryPolicy(max_attempts=3, retry_on=RetryOn.OOM)),
        Stage.call("report", report, inputs=["count", "bigrams"], footprint=small,
                   params={"title": params.report.title, "top": params.report.top}),
    )
