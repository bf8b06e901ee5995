"""Stage configs: dataclasses filled from a flat YAML file, then from `--key value` flags.

Every stage has one dataclass. A YAML file is a flat mapping of its fields; flags override it.
Unknown keys and bad types are errors that name the field and suggest the closest one. We do not
use HfArgumentParser here because it imports transformers, and `korlhf data ...` must stay light.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from korlhf.errors import KorlhfError

T = TypeVar("T")


def load_config(cls: type[T], config_path: str | Path | None = None, args: list[str] | None = None,
                command: str | None = None) -> T:
    """Build ``cls`` from an optional YAML file and CLI-style ``args`` (``--key value``).

    Precedence: dataclass defaults < YAML < flags. ``args`` may also contain ``--config FILE``.
    ``--block.field value`` sets one field of a dict field (a pipeline's ``ppo:`` block) and keeps
    the rest of it. ``command`` (``korlhf train ppo``) starts every error message.
    """
    args = list(args or [])
    flag_values, flag_config = _parse_flags(args)
    config_path = flag_config or config_path
    raw: dict[str, tuple[Any, str]] = {}
    if config_path is not None:
        for key, value in _read_yaml(Path(config_path)).items():
            raw[key] = (value, str(config_path))
    for key, value in flag_values.items():
        block, dot, name = key.partition(".")
        if dot:  # --ppo.kl_coef 0.1: one field of a block of settings (torchtune's dotted overrides)
            settings = raw[block][0] if block in raw else _default(cls, block)
            if not isinstance(settings, dict):
                raise KorlhfError(f"{command + ': ' if command else ''}--{key}: {block!r} is not a block of settings")
            raw[block] = ({**settings, name: _flag_value(value)}, f"--{key}")
        else:
            raw[key] = (value, f"--{key}")
    return build_config(cls, raw, command)


def _flag_value(value: Any) -> Any:
    """A flag's text as YAML reads it (0.1 -> float, null -> None): a block's fields are typed later."""
    import yaml

    if not isinstance(value, str):
        return [_flag_value(v) for v in value]
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _default(cls: type, name: str) -> Any:
    """The default of field ``name`` of ``cls`` ({} if it has none, or is no field)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return {}


def build_config(cls: type[T], raw: dict[str, tuple[Any, str]], command: str | None = None) -> T:
    """``raw`` maps field name -> (value, where it came from, for messages).

    A name in the class's ``RENAMED`` ({old: new}) is refused with its new name. Messages start
    with ``command`` when given (``korlhf train ppo: unknown flag ...``).
    """
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    prefix = f"{command}: " if command else ""
    kwargs = {}
    for key, (value, origin) in raw.items():
        name = key.replace("-", "_")
        renamed = getattr(cls, "RENAMED", {}).get(name)
        if name not in valid and renamed:
            raise KorlhfError(f"{prefix}{name!r} ({origin}) was renamed: it is now {renamed}")
        if name not in valid:
            raise KorlhfError(prefix + _unknown_key_message(name, origin, valid, cls, command))
        try:
            kwargs[name] = coerce(value, hints[name], name, origin)
        except KorlhfError as exc:
            raise KorlhfError(f"{prefix}{exc}") from None
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        and f.name not in kwargs
    ]
    if missing:
        raise KorlhfError(
            f"{prefix}missing required config field(s): {', '.join(missing)} "
            f"(set them in the YAML file or as --{missing[0]} VALUE)"
        )
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__ validation
        raise KorlhfError(f"{prefix}{exc}") from None


def _unknown_key_message(name: str, origin: str, valid: list[str], cls: type, command: str | None) -> str:
    where = "flag" if origin.startswith("--") else f"key in {origin}"
    shown = f"--{name}" if origin.startswith("--") else f"'{name}'"
    if command:  # korlhf train ppo: unknown flag --foo; ... / unknown key 'foo' in FILE; ...
        msg = f"unknown flag {shown}" if origin.startswith("--") else f"unknown key {shown} in {origin}"
    else:
        msg = f"unknown {where}: {shown} is not a field of {cls.__name__}"
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if close:
        msg += f"; did you mean '{close[0]}'?"
    else:
        msg += f"; valid fields: {', '.join(valid)}"
    return msg


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise KorlhfError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise KorlhfError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KorlhfError(f"{path}: a config file must be a flat mapping of field: value, got {type(data).__name__}")
    return data


def stray_argument(args: list[str]) -> str | None:
    """The first word of ``args`` that `_parse_flags` would refuse (not a flag, nor a flag's value)."""
    i = 0
    while i < len(args):
        if not args[i].startswith("--") or args[i] == "--":
            return args[i]
        takes_value = "=" not in args[i] and i + 1 < len(args) and not args[i + 1].startswith("--")
        i += 2 if takes_value else 1
    return None


def _parse_flags(args: list[str]) -> tuple[dict[str, Any], str | None]:
    """``--key value``, ``--key=value``, bare ``--flag`` (true) and ``--no-flag`` (false).

    A repeated flag collects a list. Values stay strings; `coerce` types them.
    """
    values: dict[str, Any] = {}
    config = None
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise KorlhfError(f"unexpected argument {arg!r}: options are written --field value")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            elif key.startswith("no_"):
                key, value = key[3:], "false"
            else:
                value = "true"
        i += 1
        if key == "config":
            config = value
        elif key in values:
            prev = values[key]
            values[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            values[key] = value
    return values, config


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def coerce(value: Any, hint: Any, name: str, origin: str) -> Any:
    """Check ``value`` against the type ``hint`` and convert strings (from flags or YAML)."""
    origin_type = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin_type in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null"}):
            if type(None) in args:
                return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, name, origin)
            except KorlhfError as exc:
                errors.append(str(exc))
        raise KorlhfError(errors[0])
    if hint is Any:
        return value
    if origin_type is list:
        inner = args[0] if args else Any
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v] if value else []
        if not isinstance(value, list):
            value = [value]
        return [coerce(v, inner, name, origin) for v in value]
    if origin_type is dict or hint is dict:
        return _coerce_dict(value, name, origin)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise _type_error(name, "a boolean (true/false)", value, origin)
    if hint in (int, float):
        if isinstance(value, bool):
            raise _type_error(name, f"{'an integer' if hint is int else 'a number'}", value, origin)
        try:
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value) if not isinstance(value, str) else hint(float(value) if hint is float else value)
        except (TypeError, ValueError):
            raise _type_error(name, "an integer" if hint is int else "a number", value, origin) from None
    if hint is str:
        if isinstance(value, (dict, list)):
            raise _type_error(name, "a string", value, origin)
        return str(value)
    if typing.get_origin(hint) is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise KorlhfError(f"config field '{name}' must be one of {', '.join(map(str, allowed))}; got {value!r} ({origin})")
        return value
    return value


def _coerce_dict(value: Any, name: str, origin: str) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        value = ",".join(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise _type_error(name, "a JSON object or key=value pairs", value, origin) from None
        pairs = [p for p in text.split(",") if p]
        if all("=" in p for p in pairs):
            return dict(p.split("=", 1) for p in pairs)
    raise _type_error(name, "a mapping (key=value,key2=value2)", value, origin)


def _type_error(name: str, expected: str, value: Any, origin: str) -> KorlhfError:
    return KorlhfError(f"config field '{name}' expects {expected}, got {value!r} ({origin})")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The flat mapping that reproduces ``cfg`` when saved as YAML."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), allow_unicode=True, sort_keys=False), encoding="utf-8")


def describe_fields(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for each field: what `--help` of a stage prints."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        type_name = getattr(hints[f.name], "__name__", None) or str(hints[f.name]).replace("typing.", "")
        rows.append((f.name, type_name, default, f.metadata.get("help", "")))
    return rows


def config_from_block(cls: type[T], block: str, settings: dict, fixed: dict, command: str | None = None) -> T:
    """``cls`` from one block of a pipeline config (``ppo: {kl_coef: 0.1}``) plus the fields the
    pipeline sets itself (``fixed``: the paths that chain the stages); setting one of those in the
    block is an error."""
    clash = sorted(set(settings) & set(fixed))
    if clash:
        raise KorlhfError(f"pipeline {block}: {', '.join(clash)} is set by the pipeline (it chains the stages); "
                          f"remove it from `{block}:`")
    raw = {k: (v, f"pipeline config `{block}:`") for k, v in settings.items()}
    raw.update({k: (v, "pipeline") for k, v in fixed.items()})
    return build_config(cls, raw, command)
