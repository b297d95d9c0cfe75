"""What ``blut recipes new NAME`` writes: a cookbook distribution that installs and tests green.

The layout (``NAME`` = ``mybook``)::

    blut-cookbook-mybook/
      pyproject.toml                    the blut.cookbooks entry point ``mybook``
      README.md
      src/blut_cookbook_mybook/
        __init__.py, py.typed
        plugin.py                       the hookimpls: blut_cookbooks, blut_recipes
        pipeline.py                     the recipe ``mybook:example`` and its stages
      tests/test_mybook.py              uses blut's pytest plugin (no conftest)

The recipe is three stages: ``generate`` writes numbers (fixed footprint), ``summarize``
holds them all in memory (a footprint that scales with the ``items`` driver), ``report``
writes Markdown.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from blut_core import ConfigError, __version__

PREFIX = "blut-cookbook-"
#: a cookbook name: what CookbookSpec accepts, ending so that the distribution name is valid
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_DIST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_HINT = "use lower-case letters, digits, '-' or '_', e.g. `blut recipes new mybook`"


def check_name(raw: str) -> tuple[str, str, str]:
    """(cookbook name, distribution name, Python package) for ``raw``, or a one-line ConfigError.

    ``raw`` may be the cookbook name (``mybook``) or the distribution name
    (``blut-cookbook-mybook``).
    """
    name = raw.strip()
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    if not name:
        raise ConfigError(f"cookbook name {raw!r} is empty", hint=_HINT)
    if not _NAME.match(name):
        lower = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
        better = f"; try {lower!r}" if lower and _NAME.match(lower) and lower != name else ""
        raise ConfigError(f"cookbook name {raw!r} is not valid: it must start with a lower-case "
                          f"letter and hold only lower-case letters, digits, '-' and '_'{better}",
                          hint=_HINT)
    dist = PREFIX + name
    if not _DIST.match(dist):
        raise ConfigError(f"cookbook name {raw!r} is not valid: distribution {dist!r} must end "
                          f"with a letter or digit", hint=_HINT)
    package = "blut_cookbook_" + name.replace("-", "_")
    if not package.isidentifier():
        raise ConfigError(f"cookbook name {raw!r} is not valid: {package!r} is not a Python name",
                          hint=_HINT)
    return name, dist, package


def blut_requirement() -> str:
    """``blut>=MAJOR.MINOR,<MAJOR.MINOR+1`` for the running blut (its hooks are what it targets)."""
    major, minor = (int(p) for p in re.findall(r"\d+", __version__)[:2])
    return f"blut>={major}.{minor},<{major}.{minor + 1}"


def render(name: str, dist: str, package: str) -> dict[str, str]:
    """Relative path -> text of every file of the new distribution."""
    values = {"name": name, "dist": dist, "package": package, "requirement": blut_requirement(),
              "title": name.replace("-", " ").replace("_", " ").title()}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{package}/__init__.py": INIT,
        f"src/{package}/py.typed": "",
        f"src/{package}/plugin.py": PLUGIN,
        f"src/{package}/pipeline.py": PIPELINE,
        f"tests/test_{package.removeprefix('blut_cookbook_')}.py": TEST,
    }
    return {path: Template(text).substitute(values) for path, text in files.items()}


def write(target: Path, files: dict[str, str]) -> list[Path]:
    """Write ``files`` under ``target`` (which must not exist, or be an empty directory)."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not an empty directory",
                          hint="choose another --path, or remove it first")
    written = []
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


PYPROJECT = '''\
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "$dist"
version = "0.1.0"
description = "The $name cookbook for blut."
requires-python = ">=3.11"
dependencies = ["$requirement"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points."blut.cookbooks"]
$name = "$package.plugin"

[tool.hatch.build]
dev-mode-dirs = ["src"]          # pip install -e: a .pth file naming src/

[tool.hatch.build.targets.wheel]
packages = ["src/$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "--import-mode=importlib"
'''

README = '''\
# $dist

The `$name` cookbook for [blut](https://pypi.org/project/blut/): recipes whose stages
declare their memory, so blut runs them in parallel without running the machine out of it.

```sh
pip install -e .              # registers the cookbook (entry point blut.cookbooks: $name)
blut recipes show $name:example
blut run $name:example -p items=200000
python -m pytest              # blut's pytest plugin provides the fixtures
```

`src/$package/plugin.py` registers the cookbook and its recipes; each recipe
lives in a module of its own (`pipeline.py`), imported only when blut asks for recipes.
'''

INIT = '''\
"""The $name cookbook for blut (hooks in :mod:`$package.plugin`)."""
'''

PLUGIN = '''\
"""The $name cookbook's hooks: what blut loads for it at every start.

Kept cheap to import: recipe modules are imported inside the hooks, only when blut asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import CookbookSpec, Recipe


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    """Registration: the ``$name`` cookbook."""
    from blut_core import CookbookSpec

    yield CookbookSpec(name="$name", summary="$title recipes.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    """Registration: ``$name:example``."""
    from blut_core import Recipe

    from $package.pipeline import ExampleParams, build

    yield Recipe(name="example", summary="Generate numbers, summarize them in memory, report.",
                 params=ExampleParams, build=build)
'''

PIPELINE = '''\
"""``$name:example``: generate ──> summarize ──> report.

``summarize`` holds every number in memory at once, so its footprint scales with the
``items`` driver: blut admits it with a cap that follows the params (ten times the items is
not admitted at a peak measured on fewer), and calibrates the estimate from measured peaks.
"""

from __future__ import annotations

import json
import random
import statistics
from typing import TYPE_CHECKING

import attrs
from blut_core import Footprint, Plan, Stage

if TYPE_CHECKING:
    from blut_core import StageContext


@attrs.frozen(kw_only=True)
class ExampleParams:
    items: int = attrs.field(default=100_000, validator=attrs.validators.ge(1),
                             metadata={"help": "How many numbers to generate."})
    seed: int = attrs.field(default=0, metadata={"help": "Random seed."})
    title: str = attrs.field(default="Summary", metadata={"help": "Heading of the report."})


def generate(ctx: StageContext) -> None:
    """``numbers.txt``: ``items`` uniform random numbers, one a line."""
    rng = random.Random(ctx.params["seed"])
    with (ctx.out_dir / "numbers.txt").open("w", encoding="utf-8") as out:
        for i in range(ctx.params["items"]):
            out.write(f"{rng.random():.6f}\\n")
            if i % 100_000 == 0:
                ctx.heartbeat(done=i)


def summarize(ctx: StageContext) -> None:
    """``summary.json``: count, mean, median and extremes (all numbers held at once)."""
    with (ctx.input("generate") / "numbers.txt").open(encoding="utf-8") as fh:
        numbers = [float(line) for line in fh]
    summary = {"count": len(numbers), "mean": statistics.fmean(numbers),
               "median": statistics.median(numbers), "min": min(numbers), "max": max(numbers)}
    (ctx.out_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    ctx.log(count=summary["count"], mean=summary["mean"])


def report(ctx: StageContext) -> None:
    """``report.md`` from the summary."""
    summary = json.loads((ctx.input("summarize") / "summary.json").read_text(encoding="utf-8"))
    lines = [f"# {ctx.params['title']}", ""]
    lines += [f"- {key}: {value:.6g}" for key, value in summary.items()]
    (ctx.out_dir / "report.md").write_text("\\n".join(lines) + "\\n", encoding="utf-8")


def build(params: ExampleParams) -> Plan:
    """The example DAG for ``params``.

    ``generate`` and ``report`` stream: a small fixed footprint. ``summarize`` needs ~40 bytes
    a number (a float and a list slot, and the sorted copy ``median`` makes); 64 is declared,
    conservative-high, on top of a 64 MiB base for the interpreter.
    """
    small = Footprint.fixed("128M")
    held = Footprint.scaling("64M", {"items": "64"}, drivers={"items": params.items})
    return Plan.of(
        Stage.call("generate", generate, footprint=small,
                   params={"items": params.items, "seed": params.seed}),
        Stage.call("summarize", summarize, inputs=["generate"], footprint=held),
        Stage.call("report", report, inputs=["summarize"], footprint=small,
                   params={"title": params.title}),
    )
'''

TEST = '''\
"""Tests of the $name cookbook.

blut's pytest plugin (installed with blut) provides the fixtures: ``app`` (a fresh App in a
private BLUT_HOME, here loading this cookbook alone), ``run_recipe`` (a real run, returning
its RunSummary) and ``assert_peak_within_declaration``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from blut_core import App, ConfigError, Plan

from $package.pipeline import ExampleParams, build

pytestmark = pytest.mark.blut(cookbooks=["$name"])


def test_the_recipe_is_registered(app: App) -> None:
    ref = app.cookbooks.find("$name:example")
    assert ref.recipe.build is build and ref.distribution == "$dist"


def test_every_stage_declares_its_memory() -> None:
    plan = build(ExampleParams(items=10))
    assert isinstance(plan, Plan)
    assert [s.name for s in plan.topological()] == ["generate", "summarize", "report"]
    assert all(s.footprint is not None for s in plan)
    assert plan.by_name["summarize"].footprint.drivers == {"items": 10}  # type: ignore[union-attr]


def test_a_run_summarizes_every_number(run_recipe: Any, assert_peak_within_declaration: Any) -> None:
    summary = run_recipe("$name:example", items=5000, seed=1)
    assert summary.outcome == "ok"
    out = Path(summary.run_dir) / "stages" / "summarize" / "out"
    result = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert result["count"] == 5000 and 0.0 <= result["min"] <= result["median"] <= result["max"] < 1.0
    assert_peak_within_declaration(summary, "summarize")


def test_bad_params_are_refused_in_one_line(run_recipe: Any) -> None:
    with pytest.raises(ConfigError, match="items: must be >= 1"):
        run_recipe("$name:example", items=0)
'''
