"""A Stage: one unit of work, a Python callable or an argv command.

A stage has a ``name`` (unique in its plan), a ``version`` (bump it to invalidate cached
results), JSON-able ``params``, ``inputs`` (names of upstream stages) and declarations
(footprint, retry, timeouts) that the executor and the broker honour.

Python stages name a module-level function, ``fn(ctx)``, run in a fresh process by
``blut_core.process.runner``; command stages are argv lists run without a shell unless
``shell=True``. Argv items may use ``{out}``, ``{work}``, ``{inputs[NAME]}``,
``{params[KEY]}``, ``{attempt}`` and ``{python}`` placeholders.

Where a shell reads a placeholder (the string of a ``shell=True`` stage, or the script after
``-c`` of an argv that starts ``sh``, ``bash`` and the like) its value is never shell code:
each value is assigned to a shell variable, quoted, at the top of the script, and the
placeholder becomes a reference to that variable, so a param such as ``x; touch PWNED``
or ``$(reboot)`` arrives as exactly that text. ``raw=("KEY", ...)`` names the params whose
text is pasted into the script as it is, for a param that holds shell syntax on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from blut_core.errors import PlanError
from blut_core.model.declarations import RetryPolicy, Timeouts
from blut_core.model.footprint import Footprint
from blut_core.model.reprs import record_repr

_STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _check_name(_: object, __: object, value: str) -> None:
    if not _STAGE_NAME.match(value):
        raise PlanError(
            f"stage name {value!r} is not valid",
            hint="use letters, digits, '_', '-' and '.', starting with a letter or digit",
        )


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    # a function, not ``tuple``: attrs reads a converter's signature, and a builtin's costs
    # a tokenizer (~8 ms of every start)
    return tuple(value)


def _names(inputs: Iterable[str | Stage]) -> tuple[str, ...]:
    return tuple(i.name if isinstance(i, Stage) else str(i) for i in inputs)


@attrs.frozen(kw_only=True)
class Stage:
    """One node of a plan. Build it with :meth:`call` or :meth:`command`."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_check_name)
    target: str | None = None            # "package.module:function" for Python stages
    argv: tuple[str, ...] | None = None  # for command stages
    shell: bool = False
    version: str = "1"
    params: Mapping[str, Any] = attrs.field(factory=dict)
    inputs: tuple[str, ...] = attrs.field(default=(), converter=_names)
    env: Mapping[str, str] = attrs.field(factory=dict)
    footprint: Footprint | None = None
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    cache: bool = True
    #: Params (by key) pasted into a shell script as they are, instead of quoted.
    raw: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    #: How long the stage is expected to run, in seconds: orders the ready set by the
    #: critical path. Without it, durations measured in earlier runs are used.
    expected_seconds: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0.0)))

    @raw.validator
    def _check_raw(self, _: object, value: tuple[str, ...]) -> None:
        unknown = [k for k in value if k not in self.params]
        if unknown:
            raise PlanError(f"stage {self.name!r}: raw names {', '.join(map(repr, unknown))}, "
                            "not a param of the stage",
                            hint="raw=(...) lists keys of params= whose text a shell reads as it is")

    @property
    def kind(self) -> str:
        """``python`` or ``command``."""
        return "python" if self.target is not None else "command"

    @classmethod
    def call(cls, name: str, fn: Callable[..., Any] | str, **kwargs: Any) -> Stage:
        """A Python stage running ``fn(ctx)``; ``fn`` must be a module-level function."""
        return cls(name=name, target=callable_target(fn, stage=name), **kwargs)

    @classmethod
    def command(cls, name: str, argv: Iterable[str] | str, *, shell: bool = False,
                **kwargs: Any) -> Stage:
        """A command stage. A string is one shell command and requires ``shell=True``.

        Placeholders a shell reads are quoted: ``Stage.command("echo", "echo {params[msg]}
        > {out}/o.txt", shell=True, params={"msg": m})`` writes ``m`` whatever it holds
        (quotes, ``;``, newlines, ``$(...)``). Pass ``raw=("KEY",)`` to paste param ``KEY``
        into the script as shell code instead (e.g. a param of extra flags to split).
        """
        if isinstance(argv, str):
            if not shell:
                raise PlanError(
                    f"stage {name!r}: a command given as one string needs shell=True",
                    hint="pass a list of arguments, or shell=True to run it through /bin/sh",
                )
            argv = ("/bin/sh", "-c", argv)
        items = tuple(str(a) for a in argv)
        if not items:
            raise PlanError(f"stage {name!r}: the command is empty")
        return cls(name=name, argv=items, shell=shell, **kwargs)

    def to_json(self) -> dict[str, Any]:
        """The stage as ``plan.json`` holds it: what the converter unstructures, field by
        field, without building cattrs' functions for it (the same data; tests compare)."""
        from blut_core.model.convert import plain, record

        fp = self.footprint
        return {"name": self.name, "target": self.target,
                "argv": None if self.argv is None else list(self.argv), "shell": self.shell,
                "version": self.version, "params": plain(dict(self.params)),
                "inputs": list(self.inputs), "env": plain(dict(self.env)),
                "footprint": None if fp is None else record(fp, Footprint),
                "retry": record(self.retry, RetryPolicy), "timeouts": record(self.timeouts, Timeouts),
                "cache": self.cache, "raw": list(self.raw), "expected_seconds": self.expected_seconds}

    def identity(self) -> dict[str, Any]:
        """What, besides inputs, decides this stage's cache key."""
        what = self.target if self.target is not None else list(self.argv or ())
        identity = {"name": self.name, "version": self.version, "kind": self.kind,
                    "what": what, "params": dict(self.params), "env": dict(self.env)}
        if self.raw:  # raw or quoted changes what the command does
            identity["raw"] = sorted(self.raw)
        return identity


def callable_target(fn: Callable[..., Any] | str, *, stage: str) -> str:
    """``module:qualname`` of ``fn``, checked to be importable by that name."""
    if isinstance(fn, str):
        mod, _, name = fn.partition(":")
        if not mod or not name:
            raise PlanError(f"stage {stage!r}: target {fn!r} is not 'module:function'")
        return fn
    module_name: str | None = getattr(fn, "__module__", None)
    qualname: str = getattr(fn, "__qualname__", "")
    if not module_name or "<" in qualname or module_name == "__main__":
        raise PlanError(
            f"stage {stage!r}: {qualname or fn!r} is not a module-level function, "
            "so a stage process cannot import it",
            hint="define the stage function at module level in an importable module",
        )
    return f"{module_name}:{qualname}"
