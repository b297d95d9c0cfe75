"""The one cattrs converter blut uses, and field-by-field error reporting.

``structure(data, cls, where=...)`` turns plain data into attrs instances and raises a
:class:`ConfigError` whose details name every bad field by its dotted path, the expected
type, and for unknown keys the list of valid ones.
"""

from __future__ import annotations

import enum
import functools
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from blut_core.errors import ConfigError

if TYPE_CHECKING:
    import cattrs

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _int(value: Any, _: type) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _float(value: Any, _: type) -> float:
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        result = float(value.strip())
    else:
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(result):
        raise ValueError(f"expected a finite number, got {value!r}")
    return result


def _bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError(f"expected true or false, got {value!r}")


def _str(value: Any, _: type) -> str:
    if isinstance(value, (dict, list)):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return str(value)


@functools.cache
def converter() -> cattrs.Converter:
    """The process's converter: strict scalars, extra keys forbidden, enums by value."""
    import cattrs

    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(int, _int)
    conv.register_structure_hook(float, _float)
    conv.register_structure_hook(bool, _bool)
    conv.register_structure_hook(str, _str)
    conv.register_structure_hook(Path, lambda v, _: Path(v).expanduser())
    conv.register_unstructure_hook(Path, str)
    conv.register_unstructure_hook(enum.Enum, lambda e: e.value)
    return conv


#: The scalar hooks by the annotation a field may carry (a string under postponed annotations).
_SCALAR_HOOKS: dict[Any, Any] = {int: _int, "int": _int, float: _float, "float": _float,
                                 bool: _bool, "bool": _bool, str: _str, "str": _str}
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})


def _structure_scalars(data: Any, cls: type[T]) -> T | None:
    """``cls`` from ``data`` without cattrs, when that is all there is to it: an attrs class
    of int, float, bool and str fields only, every key one of them, nothing required missing;
    the same scalar hooks the converter uses convert the values. ``None`` when it is more than
    that or anything is wrong: the converter then structures it, or words the error."""
    if type(data) is not dict or not attrs.has(cls):
        return None
    kwargs: dict[str, Any] = {}
    seen = 0
    for a in attrs.fields(cls):
        hook = _SCALAR_HOOKS.get(a.type) if a.init else None
        if hook is None:
            return None
        if a.name in data:
            seen += 1
            try:
                kwargs[a.alias] = hook(data[a.name], a.type)
            except (TypeError, ValueError):
                return None
        elif a.default is attrs.NOTHING:
            return None
    if seen != len(data):
        return None
    try:
        built = cast(T, cls(**kwargs))
    except Exception:  # a validator: the converter's path words it field by field
        return None
    return built


def structure(data: Any, cls: type[T], *, where: str, hint: str | None = None) -> T:
    """Structure ``data`` as ``cls`` or raise :class:`ConfigError` listing every bad field.

    Params of scalar fields (most recipes') are built without importing cattrs (~30 ms of a
    run); anything else, and every error, goes through the one converter.
    """
    quick = _structure_scalars(data, cls)
    if quick is not None:
        return quick
    import cattrs

    try:
        return converter().structure(data, cls)
    except (cattrs.BaseValidationError, cattrs.ForbiddenExtraKeysError) as exc:
        details = cattrs.transform_error(exc, path="", format_exception=_format)
        lines = [_tidy(d) for d in details]
        raise ConfigError(f"invalid {where}: " + "; ".join(lines),
                          details=lines if len(lines) > 1 else (), hint=hint) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {where}: {exc}", hint=hint) from None


# attrs validators say "'docs' must be >= 1: 0" (number bounds end in ": VALUE").
#: compiled at first use (by re), not by every import
_VALIDATOR = r"^'(?P<field>[A-Za-z_][A-Za-z0-9_]*)' (?P<rest>.*)$"
_BOUND = r"^(?P<rule>must be [<>=!]+ .+): (?P<value>[^:]+)$"


def _tidy(line: str) -> str:
    """cattrs says 'msg @ $.a.b'; we say 'a.b: msg'.

    A validator that failed in the class's ``__init__`` carries no field path of its own;
    its attrs message names the field, which is moved into the path.
    """
    msg, sep, path = line.rpartition(" @ ")
    if not sep:
        return line
    path = path.removeprefix("$").lstrip(".")
    named = re.match(_VALIDATOR, msg, re.DOTALL)
    if named:
        path = f"{path}.{named['field']}" if path else named["field"]
        msg = named["rest"]
        bound = re.match(_BOUND, msg, re.DOTALL)
        if bound:
            msg = f"{bound['rule']}, got {bound['value']}"
    return f"{path}: {msg}" if path else msg


def _format(exc: BaseException, type_: Any) -> str:
    import cattrs

    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        valid = ", ".join(a.name for a in attrs.fields(exc.cl)) if attrs.has(exc.cl) else "?"
        extra = ", ".join(sorted(exc.extra_fields))
        return f"unknown key(s) {extra} (valid keys: {valid})"
    expected = _type_name(type_)
    if isinstance(exc, KeyError):
        return "required field missing"
    if type_ is None and isinstance(exc, (ValueError, TypeError)):
        # Raised by the class itself: an attrs validator or a post-init check. Some attrs
        # validators pass (message, attribute, ...) as args; the message comes first.
        first = exc.args[0] if exc.args else ""
        return first if isinstance(first, str) and first else str(exc)
    if isinstance(exc, (ValueError, TypeError)) and expected:
        return f"invalid value ({exc}), expected {expected}"
    return cattrs.v.format_exception(exc, type_)


def _type_name(type_: Any) -> str:
    if type_ is None:
        return ""
    if isinstance(type_, type):
        if issubclass(type_, enum.Enum):
            return "one of " + ", ".join(repr(m.value) for m in type_)
        return type_.__name__
    return str(type_).replace("typing.", "")


# --- params from defaults, a file, and -p key=value ------------------------------------


#: How deeply params may nest (tables in tables, lists in lists): far more than any recipe
#: needs, and far less than what would exhaust Python's stack while they are copied,
#: structured and written out.
MAX_DEPTH = 64


def too_deep(data: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``data`` nests dicts and lists more than ``limit`` levels (checked without
    recursion, so that any depth can be asked about)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=3`` → (["a", "b"], 3). Values are JSON literals when they parse, else strings."""
    import json

    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"bad -p value {_short(item)}: expected key=value",
                          hint="write -p key=value (dotted keys for nesting, e.g. -p report.top=5)")
    path = key.split(".")
    if len(path) > MAX_DEPTH:
        raise ConfigError(f"bad -p key {_short(key)}: {len(path)} levels deep, more than the "
                          f"{MAX_DEPTH} params may nest", hint="params nest a few levels at most")
    try:
        value: Any = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON (or nested past the parser's stack)
        value = raw
    if too_deep(value, MAX_DEPTH - len(path)):
        raise ConfigError(f"bad -p value for {_short(key)}: nested more than {MAX_DEPTH} levels deep",
                          hint="params nest a few levels at most")
    return path, value


def _short(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters (an error line stays one line)."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``-p`` overrides onto nested ``data`` (a copy is returned)."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    if too_deep(out):
        raise ConfigError(f"params nest more than {MAX_DEPTH} levels deep",
                          hint="params nest a few levels at most; check the -p keys and --params file")
    return out


def read_params_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON params file; errors name the file and line.

    A file that is binary, not UTF-8, nested more than :data:`MAX_DEPTH` levels or not a
    table at the top is refused in one line naming the file.
    """
    import json
    import tomllib

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read params file {path}: {exc.strerror or exc}",
                          hint="check the path given to --params") from None
    text = _text_of(path, raw)
    deep = ConfigError(f"params file {path}: nested more than {MAX_DEPTH} levels deep",
                       hint="params nest a few levels at most; is this the right file?")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"params file {path}, line {exc.lineno}: {exc.msg}",
                              hint="fix the JSON syntax at that line") from None
        except RecursionError:
            raise deep from None
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise ConfigError(f"params file {path}: {_one_line(exc)}",
                              hint="fix that value in the file") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line = getattr(exc, "lineno", None) or _line_of(str(exc))
            where = f", line {line}" if line else ""
            msg = str(exc).split(" (at line")[0]
            raise ConfigError(f"params file {path}{where}: {msg}",
                              hint="fix the TOML syntax at that line (or use a .json file)") from None
        except RecursionError:
            raise deep from None
        except ValueError as exc:
            raise ConfigError(f"params file {path}: {_one_line(exc)}",
                              hint="fix that value in the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"params file {path}: the top level must be a table/object",
                          hint="write key = value lines (TOML) or one {...} object (JSON)")
    if too_deep(data):
        raise deep
    return data


def _text_of(path: Path, raw: bytes) -> str:
    """The file's text: UTF-8 (a byte-order mark is allowed), or a one-line ConfigError."""
    hint = "a params file is UTF-8 text, TOML or JSON; save it as UTF-8 (or pass the right file)"
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ConfigError(f"params file {path} is binary (a NUL byte at offset {nul}), "
                          "not TOML or JSON text", hint=hint)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"params file {path}, line {line}: not UTF-8 text "
                          f"(byte 0x{raw[exc.start]:02x} at offset {exc.start})", hint=hint) from None


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _line_of(message: str) -> int | None:
    import re

    m = re.search(r"at line (\d+)", message)
    return int(m.group(1)) if m else None


def unstructure(value: Any) -> Any:
    """Plain data for ``value`` through the one converter (an attrs record of scalar fields
    only, such as most recipes' params, is read directly: the converter gives the same)."""
    cls = type(value)
    if attrs.has(cls):
        out = {a.name: getattr(value, a.name) for a in attrs.fields(cls)}
        if all(type(v) in _PLAIN_SCALARS for v in out.values()):
            return out
    return converter().unstructure(value)


def plain(value: Any) -> Any:
    """What the converter makes of a value held in an ``Any`` (a stage's params, a
    footprint's spec): dicts, lists and tuples (as lists) of scalars are copied here, enums
    become their values, paths strings, attrs records dicts; anything else is left to the
    converter. Lets a plan be written without building cattrs' unstructure functions."""
    cls = type(value)
    if cls in _PLAIN_SCALARS:
        return value
    if cls is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    if cls is list or cls is tuple:
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if attrs.has(cls):
        return record(value, cls)
    return converter().unstructure(value)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def record(value: Any, cls: type) -> dict[str, Any]:
    """The fields of attrs record ``value`` as the converter unstructures it as ``cls``."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(a.name for a in attrs.fields(cls))
    return {name: plain(getattr(value, name)) for name in names}
