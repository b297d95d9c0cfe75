"""Task automation for blut: ``nox -l`` lists sessions.

Sessions reuse the interpreter's environment (``venv_backend="none"``) so that CI, which
has installed blut, its cookbooks and packages once, does not install them again per session.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The whole test suite: core, built-in plugins, cookbooks, packages."""
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff over the repository."""
    session.run("ruff", "check", ".")


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """mypy (strict) over core, built-ins and cookbooks."""
    session.run("mypy")


@nox.session(venv_backend="none", default=False)
def docs(session: nox.Session) -> None:
    """The docs site (mkdocs-material, mkdocstrings): built strictly, a warning fails it.

    Needs the ``docs`` extra (``pip install -e '.[docs]'``); writes ``build/site``.
    """
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(venv_backend="none", default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: medians and ratios against baselines run in the same command."""
    session.run("python", "benchmarks/run.py", *session.posargs)
