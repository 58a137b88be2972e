"""One schema per set of options: a dataclass whose fields carry their range, choices, CLI flag and help.

Everything else derives from it: the defaults (the dataclass), the CLI flags with their help and
shown defaults (:func:`command`), validation with ranges and choices (:func:`check`), and for the run
config the TOML file and ``--print-config`` (:mod:`edge_fer.config`). Used by ``run``/``bench``/``eval``
(:mod:`edge_fer.config`), ``train`` (``TrainConfig``), ``adapt`` (``AdaptOptions``) and ``convert``
(``ConvertOptions``)::

    @dataclass
    class DetectorConfig:
        every: int = opt(1, lo=1, hi=1000, flag="--detect-every", help="Detect faces every N frames.")

A field without ``flag`` exists in the file (or the library) only. Other spellings of a flag:
``aliases`` are accepted silently (``--out`` for ``--output``), ``deprecated`` ones with a one-line
warning on stderr until release :data:`REMOVED_IN` (:func:`rename`, :func:`translate_argv`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

from edge_fer.errors import ConfigError

INF = float("inf")
_MISSING = dataclasses.MISSING

# the release that drops the deprecated spellings (docs/cli-conventions.md lists them)
REMOVED_IN = "0.3.0"
# command path ("bench", "models list") -> {old spelling: (new spelling, warn)}
_RENAMED: dict[str, dict[str, tuple[str, bool]]] = {}


@dataclass(frozen=True)
class Spec:
    """What a field's metadata says about it (``field(metadata={"spec": Spec(...)})``)."""

    lo: float | None = None
    hi: float = INF
    open_lo: bool = False
    open_hi: bool = False
    choices: tuple[Any, ...] = ()
    flag: str = ""  # "--detect-every", "--per-frame/--no-per-frame", "" = no CLI flag
    short: str = ""  # "-s"
    help: str = ""
    required: bool = False  # a CLI option without default (typer's ``...``)
    cli_type: Any = None  # the flag's type when it differs from the field's (parsed by the command)
    aliases: tuple[str, ...] = ()  # other spellings accepted silently ("--out")
    deprecated: tuple[str, ...] = ()  # old spellings accepted with a warning until REMOVED_IN

    def describe_range(self) -> str:
        lo = self.lo if self.lo is not None else -INF
        if self.hi == INF:
            return f"{'>' if self.open_lo else '>='} {lo:g}"
        return f"in {'(' if self.open_lo else '['}{lo:g}, {self.hi:g}{')' if self.open_hi else ']'}"


def opt(
    default: Any = _MISSING,
    *,
    lo: float | None = None,
    hi: float = INF,
    open_lo: bool = False,
    open_hi: bool = False,
    choices: Sequence[Any] = (),
    flag: str = "",
    short: str = "",
    help: str = "",
    default_factory: Callable[[], Any] | Any = _MISSING,
    required: bool = False,
    cli_type: Any = None,
    aliases: Sequence[str] = (),
    deprecated: Sequence[str] = (),
) -> Any:
    """A dataclass field with its :class:`Spec`."""
    spec = Spec(
        lo=lo,
        hi=hi,
        open_lo=open_lo,
        open_hi=open_hi,
        choices=tuple(choices),
        flag=flag,
        short=short,
        help=help,
        required=required,
        cli_type=cli_type,
        aliases=tuple(aliases),
        deprecated=tuple(deprecated),
    )
    if default_factory is not _MISSING:
        return field(default_factory=default_factory, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata.get("spec") or Spec()


def rename(command: str, old: str, new: str, *, warn: bool = True) -> None:
    """Accept ``old`` as a spelling of ``new`` in ``command`` (``"bench"``, ``"models list"``).
    ``warn``: a deprecated spelling (one warning line each time it is used, until :data:`REMOVED_IN`);
    otherwise a silent alias. A pair ``--old/--no-old`` maps onto ``--new/--no-new`` part by part."""
    olds, news = old.split("/"), new.split("/")
    if len(olds) != len(news):
        raise ValueError(f"{old!r} and {new!r} do not pair up")
    table = _RENAMED.setdefault(command, {})
    for o, n in zip(olds, news):
        table[o] = (n, warn)


def renamed(command: str | None = None) -> dict[str, dict[str, tuple[str, bool]]]:
    """The registered spellings: ``{command: {old: (new, warn)}}`` (for the docs and the tests)."""
    if command is not None:
        return {command: dict(_RENAMED.get(command, {}))}
    return {k: dict(v) for k, v in _RENAMED.items()}


def _register_spellings(command: str, spec: Spec) -> None:
    for old in spec.aliases:
        rename(command, old, spec.flag, warn=False)
    for old in spec.deprecated:
        rename(command, old, spec.flag, warn=True)


def translate_argv(argv: Sequence[str], warn: Callable[[str], None] | None = None) -> list[str]:
    """``argv`` with every registered old spelling of its command replaced by the current one
    (``--old`` and ``--old=VALUE``; nothing after ``--``). A deprecated one calls ``warn`` with one
    line (default: stderr). Root options come first (``edge-fer --debug bench ...``); a command
    with subcommands (``models``) is matched with its subcommand."""
    args = list(argv)
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1
    if i >= len(args):
        return args
    path = args[i]
    i += 1
    if any(k.startswith(path + " ") for k in _RENAMED) and i < len(args) and not args[i].startswith("-"):
        path = f"{path} {args[i]}"
        i += 1
    table = _RENAMED.get(path)
    if not table:
        return args
    if warn is None:
        import sys

        def warn(line: str) -> None:
            print(line, file=sys.stderr)

    out = args[:i]
    for j in range(i, len(args)):
        a = args[j]
        if a == "--":
            out.extend(args[j:])
            break
        name, eq, value = a.partition("=")
        if name in table:
            new, deprecated = table[name]
            if deprecated:
                warn(
                    f"edge-fer: warning: 'edge-fer {path} {name}' is deprecated and goes in edge-fer "
                    f"{REMOVED_IN}; use {new}"
                )
            a = new + eq + value
        out.append(a)
    return out


def _name(key: str) -> str:
    return key if key.startswith("-") else f"config key '{key}'"


def check_value(key: str, value: Any, spec: Spec) -> None:
    """Finite numbers, the range and the choices of one value; a :class:`ConfigError` naming ``key``
    (a config key, shown quoted, or a ``--flag``)."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_name(key)} must be a finite number, got {value!r}")
    elif isinstance(value, (int, float)) and (spec.lo is not None or spec.hi != INF):
        lo = spec.lo if spec.lo is not None else -INF
        above_lo = lo < value if spec.open_lo else lo <= value
        below_hi = value < spec.hi if spec.open_hi else value <= spec.hi
        if not (above_lo and below_hi):
            raise ConfigError(f"{_name(key)} must be {spec.describe_range()}, got {value!r}")
    if spec.choices and value is not None and value not in spec.choices:  # None: unset optional field
        shown = ", ".join(str(c) for c in spec.choices)
        raise ConfigError(f"{_name(key)} must be one of {shown}, got {value!r}")


def check(obj: Any, prefix: str = "", *, as_flags: bool = False) -> Any:
    """Check every field of the dataclass ``obj`` against its spec; returns ``obj``. ``as_flags``:
    errors name the field's CLI flag (``--epochs``) where it has one, else ``prefix + name``."""
    for f in fields(obj):
        spec = spec_of(f)
        key = spec.flag.split("/")[0] if as_flags and spec.flag else f"{prefix}{f.name}"
        check_value(key, getattr(obj, f.name), spec)
    return obj


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return None


def _plain_type(t: Any) -> Any:
    """``Optional[X]`` / ``X | None`` -> ``X``."""
    if typing.get_origin(t) in (Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return t


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in ("", None, [], ()):
        return "none"
    return str(value)


def flag_parameters(
    cls: type, prefix: str = "", keys: Collection[str] | None = None
) -> list[tuple[str, str, inspect.Parameter]]:
    """``(parameter name, key, parameter)`` for every field of ``cls`` with a flag (and, with ``keys``,
    whose ``prefix + name`` is among them). The parameter's default is ``None`` (flag not given) so
    that a file or the dataclass default applies; the help shows the schema default."""
    import typer

    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        spec = spec_of(f)
        if not spec.flag or (keys is not None and f"{prefix}{f.name}" not in keys):
            continue
        name = spec.flag.split("/")[0].lstrip("-").replace("-", "_")
        typ = spec.cli_type or _plain_type(hints[f.name])
        default = field_default(f)
        help_text = spec.help
        if not spec.required and "(default" not in help_text:
            help_text = f"{help_text} (default: {_shown(default)})".strip()
        decls = [spec.flag] + ([spec.short] if spec.short else [])
        if spec.required:
            info = typer.Option(..., *decls, help=help_text)
            annotation: Any = typ
        else:
            info = typer.Option(None, *decls, help=help_text)
            annotation = typ if typing.get_origin(typ) is list else Optional[typ]  # noqa: UP045 (a runtime type)
        param = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)
        out.append((name, f"{prefix}{f.name}", param))
    return out


def command(
    app: Any, name: str, schemas: Sequence[tuple[str, type]], *, keys: Collection[str] | None = None, **command_kw: Any
) -> Callable:
    """Register ``func`` as the typer command ``name`` with its own parameters followed by one flag per
    schema field that has one. ``func`` receives its own arguments plus ``flags``: ``{key: value}`` of
    the flags given (``None``, i.e. not given, left out). ``schemas``: ``(key prefix, dataclass)``;
    ``keys``: only the fields with these keys (``prefix + name``) get a flag (a command that shares a
    subset of another's flags)."""

    def deco(func: Callable) -> Callable:
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "flags"]
        keymap: dict[str, str] = {}
        generated: list[inspect.Parameter] = []
        for prefix, cls in schemas:
            for pname, key, param in flag_parameters(cls, prefix, keys):
                if pname in keymap or any(p.name == pname for p in own):
                    raise RuntimeError(f"flag parameter {pname!r} defined twice in '{name}'")
                keymap[pname] = key
                generated.append(param)
            for f in fields(cls):
                if spec_of(f).flag and (keys is None or f"{prefix}{f.name}" in keys):
                    _register_spellings(name, spec_of(f))

        def wrapper(**kw: Any) -> Any:
            flags = {keymap[k]: kw.pop(k) for k in list(kw) if k in keymap}
            flags = {k: v for k, v in flags.items() if v is not None and v != []}
            return func(flags=flags, **kw)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + generated
        # typeshed declares no __signature__ on functions; inspect.signature (typer) reads it
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        wrapper.__doc__ = func.__doc__
        wrapper.__name__ = func.__name__
        app.command(name, **command_kw)(wrapper)
        return func

    return deco


def build(cls: type, values: dict[str, Any], *, as_flags: bool = True) -> Any:
    """``cls(**values)`` for a flat schema (train, convert), checked (errors name the flags);
    unknown keys are an error."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
    return check(cls(**values), as_flags=as_flags)
