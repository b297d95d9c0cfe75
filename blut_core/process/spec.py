"""How a stage attempt becomes a process: its context file, its environment, its argv.

This is the contract a stage process relies on, whatever launcher starts it:

- ``context.json`` in the attempt directory (named by ``BLUT_CONTEXT``): run id, stage,
  attempt, target, params, inputs, out/work/checkpoint directories, events file, knobs;
- the environment: ``BLUT_CONTEXT``, ``BLUT_RUN_ID``, ``BLUT_STAGE``, ``BLUT_ATTEMPT``,
  ``BLUT_OUT_DIR``, ``BLUT_EVENTS``, ``BLUT_PARAMS`` (JSON), ``BLUT_INPUT_<NAME>`` per input,
  then the stage's own ``env``;
- argv: ``python -m blut_core.process.runner CONTEXT`` for a Python stage; for a command stage its
  argv with ``{out}``, ``{work}``, ``{inputs[NAME]}``, ``{params[KEY]}``, ``{attempt}`` and
  ``{python}`` filled in (checked when the plan was validated); in a script a shell reads
  (:func:`shell_script_index`) each value is quoted (:func:`render_shell`);
- reports: JSON lines the stage appends to its events file (``BLUT_EVENTS``), read back by
  :func:`read_events_from`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from blut_core.host.interfaces import Launcher
from blut_core.model.jobs import Job
from blut_core.model.stage import Stage
from blut_core.store.rundir import RunDir, write_bytes


def prepare_attempt(rundir: RunDir, run_id: str, stage: Stage, number: int, *,
                    cap: int | None, knobs: Mapping[str, int], pythonpath: str,
                    deferred: bool = False) -> Job:
    """Create attempt ``number`` of ``stage`` on disk and return the job that starts it.

    The attempt's output and scratch directories are the job's ``dirs``: the launcher makes
    them where the stage runs (the local one leaves it to the process it starts). With
    ``deferred`` (a launcher that ``writes_files``, in a run directory this process made,
    where no attempt directory can be left over) the attempt directory and its context file
    are left to the launcher too: the context goes in ``Job.files``.
    """
    made = rundir.attempt_dir if deferred else rundir.new_attempt
    adir = str(made(stage.name, number)) + os.sep  # joined as text: a stage's paths cost
    tmp_out, work = adir + "out.tmp", adir + "work"  # no Path objects
    ctx: dict[str, Any] = {
        "run_id": run_id, "stage": stage.name, "attempt": number,
        "target": stage.target, "params": dict(stage.params),
        "inputs": {i: str(rundir.out_dir(i)) for i in stage.inputs},
        "out_dir": tmp_out, "work_dir": work, "events": adir + "events.jsonl",
        "checkpoint_dir": str(rundir.checkpoint_dir(stage.name)), "knobs": dict(knobs),
    }
    ctx_path = adir + "context.json"
    text = json.dumps(ctx)
    if not deferred:
        write_bytes(Path(ctx_path), text.encode())
    python = stage.target is not None
    return Job(run_id=run_id, stage=stage.name, attempt=number,
               argv=tuple(stage_argv(stage, ctx, ctx_path)),
               env=stage_environment(stage, ctx, ctx_path, pythonpath=pythonpath),
               cwd=work, stdout=adir + "stdout.log", stderr=adir + "stderr.log",
               memory_cap=cap, label=f"{run_id}.{stage.name}.{number}",
               python_context=ctx_path if python else None,
               python_module=str(stage.target).partition(":")[0] if python else None,
               dirs=(tmp_out, work), files=((ctx_path, text),) if deferred else ())


_ENVIRON: tuple[dict[bytes, bytes], dict[str, str]] | None = None


def _environ() -> dict[str, str]:
    """A copy of this process's environment, decoded again only when it has changed.

    ``dict(os.environ)`` decodes every variable, every time: for each stage of a run.
    """
    global _ENVIRON
    data = getattr(os.environ, "_data", None)  # the encoded variables (CPython's os._Environ)
    if not isinstance(data, dict):
        return dict(os.environ)
    cached = _ENVIRON
    if cached is None or cached[0] != data:
        cached = _ENVIRON = (dict(data), dict(os.environ))
    return dict(cached[1])


def stage_environment(stage: Stage, ctx: Mapping[str, Any], ctx_path: Path | str, *,
                      pythonpath: str) -> dict[str, str]:
    """The environment of a stage process (this process's, plus the contract above)."""
    env = _environ()
    params = ctx["params"]
    env.update({
        "BLUT_CONTEXT": str(ctx_path), "BLUT_RUN_ID": str(ctx["run_id"]), "BLUT_STAGE": stage.name,
        "BLUT_ATTEMPT": str(ctx["attempt"]), "BLUT_OUT_DIR": str(ctx["out_dir"]),
        "BLUT_EVENTS": str(ctx["events"]), "BLUT_PARAMS": json.dumps(params) if params else "{}",
    })
    for name, path in ctx["inputs"].items():
        env["BLUT_INPUT_" + "".join(c if c.isalnum() else "_" for c in name).upper()] = path
    if stage.kind == "python" and pythonpath:
        env["PYTHONPATH"] = pythonpath
    env.update(stage.env)
    return env


def stage_argv(stage: Stage, ctx: Mapping[str, Any], ctx_path: Path | str) -> list[str]:
    """The argv that starts ``stage`` (placeholders were checked by ``Plan.validate``)."""
    if stage.target is not None:
        return [sys.executable, "-m", "blut_core.process.runner", str(ctx_path)]
    fields = {"out": ctx["out_dir"], "inputs": ctx["inputs"], "params": ctx["params"],
              "attempt": ctx["attempt"], "work": ctx["work_dir"], "python": sys.executable}
    argv = stage.argv or ()
    if not any("{" in item for item in argv):
        return list(argv)  # nothing to fill in
    script = shell_script_index(argv)
    return [item if "{" not in item
            else render_shell(item, fields, raw=stage.raw) if i == script
            else item.format(**fields) for i, item in enumerate(argv)]


#: Programs that take a script after ``-c``: where they read a placeholder, it is quoted.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh"})


def shell_script_index(argv: Sequence[str]) -> int | None:
    """The index of the argv item a shell reads as its script, if ``argv`` starts a shell
    with ``-c`` (as every ``shell=True`` stage does: ``/bin/sh -c SCRIPT``); else ``None``.

    Option clusters before it are understood (``bash -euo pipefail -c SCRIPT``), and so is
    ``env [NAME=VALUE ...]`` in front of the shell.
    """
    start = 0
    if argv and os.path.basename(argv[0]) == "env":
        start = 1
        while start < len(argv) and "=" in argv[start] and not argv[start].startswith("-"):
            start += 1
    if start >= len(argv) or os.path.basename(argv[start]) not in SHELLS:
        return None
    i = start + 1
    while i < len(argv):
        item = argv[i]
        if item in ("-o", "+o"):
            i += 2
            continue
        if len(item) < 2 or item[0] not in "-+" or not item[1:].isalpha():
            return None
        if "c" in item[1:]:
            return i + 1 if i + 1 < len(argv) else None
        i += 2 if item.endswith("o") else 1  # -o takes the option's name
    return None


def render_shell(script: str, fields: Mapping[str, Any], *, raw: Sequence[str] = ()) -> str:
    """Fill the placeholders of a shell ``script`` so that no value is ever read as code.

    Each distinct value is assigned, shell-quoted, to a variable (``_blut_1``, ...) on a
    first line added to the script, and its placeholder becomes a reference that expands to
    exactly that value where it stands: ``"${_blut_1}"`` unquoted, ``${_blut_1}`` inside
    double quotes or a here-document, ``'"${_blut_1}"'`` inside single quotes. Values of the
    params named in ``raw`` are pasted as they are (the shell reads them as code).
    """
    import shlex
    import string

    formatter = string.Formatter()
    raw_fields = {f"params[{key}]" for key in raw}
    names: dict[str, str] = {}
    out: list[str] = []
    scan = _ShellScan()
    for literal, field, spec, conversion in formatter.parse(script):
        out.append(literal)
        scan.feed(literal)
        if field is None:
            continue
        value = formatter.get_field(field, (), fields)[0]
        value = formatter.convert_field(value, conversion) if conversion else value
        text = formatter.format_field(value, formatter.vformat(spec or "", (), fields))
        if field in raw_fields:
            out.append(text)
            scan.feed(text)
            continue
        if scan.arithmetic():  # bash evaluates what it expands there: only digits go in
            out.append(text if _INTEGER.fullmatch(text) else _not_a_number(field))
        else:
            var = names.setdefault(text, f"_blut_{len(names) + 1}")
            out.append(scan.reference(var))
        scan.feed("x")  # a word stands here now
    if not names:
        return "".join(out)
    prologue = " ".join(f"{var}={shlex.quote(text)}" for text, var in names.items())
    return prologue + "\n" + "".join(out)


_INTEGER = re.compile(r"[+-]?[0-9]+")
#: Per context, the characters that can change it (everything else is skipped at once).
_SIGNIFICANT = {"s": re.compile(r"'"), "c": re.compile(r"\n"), "h": re.compile(r"[\n\\$]"),
                "d": re.compile(r'[\\"`$]'), "a": re.compile(r"[\\$()]"),
                "u": re.compile(r"[\\'\"`$#()<\n}]")}


def _not_a_number(field: str) -> str:
    """An expansion that stops the script, saying which placeholder was not an integer."""
    name = re.sub(r"[^A-Za-z0-9_.\[\]-]", "?", field)
    return f"${{_blut_arithmetic:?{name} is not an integer}}"


class _ShellScan:
    """Follows the quoting of a shell script as it is fed, far enough to know how a
    variable reference must be written where the text fed so far ends.

    Contexts: ``u`` unquoted (also inside ``$(...)``, with its parenthesis depth), ``s``
    single quotes, ``d`` double quotes, ``b`` backticks, ``p`` ``${...}``, ``c`` a comment,
    ``h`` a here-document's body, ``a`` arithmetic (``$((...))``, ``((...))``). A
    misjudged context can only cost a value its word boundaries, never run it: values are
    only ever referenced, not pasted (and in arithmetic, which bash evaluates recursively,
    only integers are written out).
    """

    def __init__(self) -> None:
        self.stack: list[list[Any]] = [["u", 0, ""]]  # kind, parenthesis depth, delimiter
        self.prev = "\n"
        self.heredocs: list[tuple[str, bool]] = []   # pending (delimiter, strip tabs)
        self.line = ""

    def reference(self, var: str) -> str:
        kinds = [k for k, _, _ in self.stack if k != "p"] or ["u"]
        kind = kinds[-1]
        if kind == "s":
            return f"'\"${{{var}}}\"'"
        if kind in ("d", "h"):
            return f"${{{var}}}"
        return f'"${{{var}}}"'

    def arithmetic(self) -> bool:
        """Whether the text fed so far ends inside arithmetic (quotes there do not count)."""
        for kind, _, _ in reversed(self.stack):
            if kind not in ("p", "d"):
                return str(kind) == "a"
        return False

    def feed(self, text: str) -> None:
        i, end = 0, len(text)
        while i < end:
            kind = self.stack[-1][0]
            found = _SIGNIFICANT.get(kind, _SIGNIFICANT["u"]).search(text, i)
            j = end if found is None else found.start()
            if j > i:  # characters that change nothing here: skipped in one step
                if kind == "h":
                    self.line += text[i:j]
                self.prev = text[j - 1]
                i = j
            if i < end:
                i = self._step(text, i)

    def _step(self, text: str, i: int) -> int:
        c, top = text[i], self.stack[-1]
        kind = top[0]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if kind == "h":
            if c == "\n":
                delim, strip = top[2], top[1] == 1
                if (self.line.lstrip("\t") if strip else self.line) == delim:
                    self.stack.pop()
                    self._open_heredoc()
                self.line = ""
                return i + 1
            self.line += c
            if c == "\\":
                return i + 2
            if c == "$" and nxt == "(":
                self.stack.append(["u", 0, ""])
                return i + 2
            return i + 1
        if kind == "s":
            if c == "'":
                self.stack.pop()
                self.prev = "x"
            return i + 1
        if kind == "c":
            if c == "\n":
                self.stack.pop()
                self._newline()
            return i + 1
        if c == "\\":
            self.prev = "x"
            return i + 2
        if c == "$" and text.startswith("$((", i):
            self.stack.append(["a", 0, ""])
            return i + 3
        if c == "$" and nxt == "(":
            self.stack.append(["u", 0, ""])
            return i + 2
        if kind == "a":
            if c == "(":
                top[1] += 1
            elif c == ")" and top[1] > 0:
                top[1] -= 1
            elif c == ")" and nxt == ")":
                self.stack.pop()
                return i + 2
            return i + 1
        if c == "$" and nxt == "{":
            self.stack.append(["p", 0, ""])
            return i + 2
        if c == "`":
            if kind == "b":
                self.stack.pop()
            else:
                self.stack.append(["b", 0, ""])
            return i + 1
        if kind == "d":
            if c == '"':
                self.stack.pop()
                self.prev = "x"
            return i + 1
        if kind == "p" and c == "}":
            self.stack.pop()
            return i + 1
        if c == "'":
            self.stack.append(["s", 0, ""])
        elif c == '"':
            self.stack.append(["d", 0, ""])
        elif c == "#" and self.prev in " \t\n;&|()<>":
            self.stack.append(["c", 0, ""])
        elif c == "(" and nxt == "(" and kind == "u" and self.prev in " \t\n;&|(":
            self.stack.append(["a", 0, ""])
            self.prev = "x"
            return i + 2
        elif c == "(" and kind == "u":
            top[1] += 1
        elif c == ")" and kind == "u" and len(self.stack) > 1:
            if top[1] == 0:
                self.stack.pop()
            else:
                top[1] -= 1
        elif c == "<" and text.startswith("<<", i) and not text.startswith("<<<", i):
            return self._heredoc(text, i + 2)
        elif c == "\n":
            self.prev = c
            self._newline()
            return i + 1
        self.prev = c
        return i + 1

    def _heredoc(self, text: str, i: int) -> int:
        """After ``<<``: note the delimiter; the body starts at the end of the line."""
        strip = text.startswith("-", i)
        i += strip
        while i < len(text) and text[i] in " \t":
            i += 1
        start = i
        while i < len(text) and text[i] not in " \t\n;&|<>()":
            i += 1
        word = text[start:i]
        delim = word.replace("'", "").replace('"', "").replace("\\", "")
        if delim:
            self.heredocs.append((delim, strip))
        self.prev = "x"
        return i

    def _newline(self) -> None:
        if self.heredocs and self.stack[-1][0] == "u":
            self._open_heredoc()

    def _open_heredoc(self) -> None:
        if self.heredocs:
            delim, strip = self.heredocs.pop(0)
            self.stack.append(["h", 1 if strip else 0, delim])
            self.line = ""


def read_events_from(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete event lines a stage appended to ``path`` after ``offset``, and the new offset.

    A line still being written (no newline yet) is left for the next read; a garbled line
    is skipped.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for raw in data[: end + 1].splitlines():
        try:
            ev = json.loads(raw)
        except ValueError:
            continue
        if isinstance(ev, dict):
            events.append(ev)
    return events, offset + end + 1


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as strict JSON: non-finite floats become their text ("nan", "inf")."""
    import math

    out: dict[str, Any] = {}
    for k, v in values.items():
        out[k] = repr(v) if isinstance(v, float) and not math.isfinite(v) else v
    return out


def stage_pythonpath() -> str:
    """``PYTHONPATH`` of Python stage processes: this process's import path."""
    return os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))


def prepare_launcher(launcher: Launcher, stages: list[Stage]) -> None:
    """Let ``launcher`` get ready for ``stages`` (e.g. start its fork server and import the
    stage modules) while the run is still being set up."""
    modules = sorted({str(s.target).partition(":")[0] for s in stages if s.target is not None})
    env = dict(os.environ)
    pythonpath = stage_pythonpath()
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    launcher.expect(sum(1 for s in stages if s.target is None))
    launcher.prepare(env, modules)
