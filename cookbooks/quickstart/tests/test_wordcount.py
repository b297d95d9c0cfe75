"""``quickstart:wordcount``: its params, the shape of its plan, and real runs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import click.testing
import pytest
from blut_cookbook_quickstart import plugin
from blut_cookbook_quickstart.wordcount import ReportParams, WordcountParams, build

from blut_core import App, Plan
from blut_core.cli import main

Invoke = Callable[..., click.testing.Result]
SMALL = ("-p", "docs=12", "-p", "words_per_doc=50", "-p", "vocabulary=300")


def _run(invoke: Invoke, *args: str) -> dict[str, Any]:
    result = invoke("run", "quickstart:wordcount", *SMALL, *args, "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    assert summary["outcome"] == "ok"
    return summary


def _hashes(summary: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["output_hash"] for s in summary["stages"]}


def _report(summary: dict[str, Any]) -> str:
    return (Path(summary["run_dir"]) / "stages" / "report" / "out" / "report.md").read_text()


# -- the recipe, without running anything ---------------------------------------------------


def test_cookbook_declares_the_recipe(app: App) -> None:
    (spec,) = plugin.blut_cookbooks()
    assert spec.name == "quickstart"
    (recipe,) = plugin.blut_recipes()
    assert (recipe.name, recipe.params, recipe.build) == ("wordcount", WordcountParams, build)
    ref = app.cookbooks.find("wordcount")
    assert (ref.qualname, ref.recipe.build, ref.distribution) == (
        "quickstart:wordcount", build, "blut-cookbook-quickstart")


def test_params_defaults_and_help() -> None:
    p = WordcountParams()
    assert (p.docs, p.words_per_doc, p.vocabulary, p.seed) == (200, 400, 2000, 0)
    assert p.report == ReportParams(title="Word count", top=20)
    for cls in (WordcountParams, ReportParams):
        for field in attrs.fields(cls):
            if field.name != "report":
                assert field.metadata.get("help"), f"{cls.__name__}.{field.name} has no help"


def test_plan_shape() -> None:
    plan = build(WordcountParams(docs=3, seed=7, report=ReportParams(top=4)))
    assert isinstance(plan, Plan)
    assert [s.name for s in plan.topological()] == [
        "generate", "tokenize", "sort", "count", "bigrams", "report"]
    stages = plan.by_name
    assert {n: s.inputs for n, s in stages.items()} == {
        "generate": (), "tokenize": ("generate",), "sort": ("tokenize",), "count": ("sort",),
        "bigrams": ("tokenize",), "report": ("count", "bigrams")}
    assert [n for n, s in stages.items() if s.kind == "command"] == ["sort"]
    assert stages["sort"].argv == ("sort", "-o", "{out}/sorted.txt", "{inputs[tokenize]}/tokens.txt")
    assert stages["sort"].env == {"LC_ALL": "C"}
    assert stages["generate"].params == {"docs": 3, "words_per_doc": 400, "vocabulary": 2000,
                                         "seed": 7}
    assert stages["bigrams"].params == {"top": 4}
    assert stages["report"].params == {"title": "Word count", "top": 4}
    for s in plan:
        assert s.footprint is not None, s.name
    # stages that hold the whole corpus scale with its size; the others stream
    scaling = {n: s.footprint.drivers for n, s in stages.items()
               if s.footprint is not None and s.footprint.model == "scaling"}
    assert scaling == {"sort": {"words": 3 * 400}, "bigrams": {"words": 3 * 400}}
    assert stages["bigrams"].retry.retry_on.value == "oom" and stages["bigrams"].retry.max_attempts > 1


def test_plan_command_shows_the_dag_and_params(invoke: Invoke, blut_home: Path) -> None:
    result = invoke("plan", "quickstart:wordcount", "-p", "report.top=5", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["params"]["report"] == {"title": "Word count", "top": 5}
    assert [(s["name"], s["kind"]) for s in shown["stages"]] == [
        ("generate", "python"), ("tokenize", "python"), ("sort", "command"),
        ("count", "python"), ("bigrams", "python"), ("report", "python")]
    assert all(s["memory"]["declared"] for s in shown["stages"])
    assert not (blut_home / "runs").exists()


# -- real runs ---------------------------------------------------------------------------


def test_run_counts_every_word(invoke: Invoke) -> None:
    summary = _run(invoke)
    assert summary["counts"]["ok"] == 6
    total = 12 * 50
    counts = json.loads((Path(summary["run_dir"]) / "stages/count/out/counts.json").read_text())
    assert sum(n for _, n in counts) == total
    report = _report(summary)
    assert report.startswith("# Word count\n")
    assert re.search(rf"^{total} words, {len(counts)} distinct\.$", report, re.M)
    sorted_tokens = (Path(summary["run_dir"]) / "stages/sort/out/sorted.txt").read_text().split()
    assert len(sorted_tokens) == total and sorted_tokens == sorted(sorted_tokens)


def test_second_run_is_cached(invoke: Invoke) -> None:
    first = _run(invoke)
    again = _run(invoke)
    assert again["counts"]["cached"] == 6 and again["counts"]["ok"] == 0
    assert _hashes(again) == _hashes(first)


def test_same_seed_same_output_different_seed_different(invoke: Invoke) -> None:
    first = _run(invoke, "-p", "seed=3")
    rerun = _run(invoke, "-p", "seed=3", "--no-cache")
    assert rerun["counts"]["ok"] == 6
    assert _hashes(rerun) == _hashes(first)
    other = _run(invoke, "-p", "seed=4")
    assert other["counts"]["ok"] == 6
    assert _hashes(other)["generate"] != _hashes(first)["generate"]
    assert _hashes(other)["report"] != _hashes(first)["report"]


def test_report_top_limits_both_lists(invoke: Invoke) -> None:
    summary = _run(invoke, "-p", "report.top=5", "-p", "report.title=Five")
    report = _report(summary)
    words, _, pairs = report.partition("## Top bigrams")
    assert report.startswith("# Five\n")
    assert re.findall(r"^(\d+)\. ", words, re.M) == ["1", "2", "3", "4", "5"]
    assert re.findall(r"^(\d+)\. ", pairs, re.M) == ["1", "2", "3", "4", "5"]
    bigrams = json.loads((Path(summary["run_dir"]) / "stages/bigrams/out/bigrams.json").read_text())
    assert len(bigrams) <= 5


# -- bad params --------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    (["-p", "docs=0"], "docs: must be >= 1, got 0"),
    (["-p", "report.top=0"], "report.top: must be >= 1, got 0"),
    (["-p", "vocabulary=3"], "vocabulary: must be >= 10, got 3"),
    (["-p", "docs=many"], "docs: invalid value"),
    (["-p", "doc=3"], "unknown key(s) doc (valid keys: docs, words_per_doc"),
])
def test_bad_params_are_one_line_exit_2(argv: list[str], message: str, app: App,
                                        blut_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "quickstart:wordcount", *argv], app=app)
    assert exit_info.value.code == 2
    first, *rest = capsys.readouterr().err.strip().splitlines()
    assert first.startswith(f"Error: invalid params for quickstart:wordcount: {message}")
    assert rest == ["Hint: see `blut recipes show quickstart:wordcount` for fields and types"]
    assert not (blut_home / "runs").exists()
