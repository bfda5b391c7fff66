"""Strict YAML → dataclass loading shared by every stage.

Every stage reads its YAML through :func:`load_config` so that a typo in a key or a
value of the wrong type fails at start-up with the key path and the file named, instead
of silently falling back to a default hours into a run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def load_config(path: str | Path, cls: type[T], section: str | None = None) -> T:
    """Load ``path`` (YAML) into the dataclass ``cls``.

    ``section`` selects one top-level key of the file (for files that hold several
    components' settings); ``None`` maps the whole document.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    document = {} if document is None else document
    if section is not None:
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        document = document.get(section, {}) or {}
    return from_dict(cls, document, source=str(path), prefix=section or "")


def from_dict(cls: type[T], data: Any, source: str = "<dict>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from plain data, rejecting unknown or ill-typed keys."""
    return _convert(cls, data, source, prefix)  # type: ignore[return-value]


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config dataclass (for logging and for writing it back)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _where(source: str, key: str) -> str:
    return f"{source}: key '{key or '<root>'}'"


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, source, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1] if len(errors) == 1 else f"{_where(source, key)}: {value!r} matches none of {args}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{_where(source, key)}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, source, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_where(source, key)}: expected a list, got {type(value).__name__}")
        item_type = args[0] if args else Any
        items = [_convert(item_type, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source, key)}: expected a mapping, got {type(value).__name__}")
        key_type, value_type = args or (Any, Any)
        return {
            _convert(key_type, k, source, f"{key}.{k}"): _convert(value_type, v, source, f"{key}.{k}")
            for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{_where(source, key)}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_where(source, key)}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(source, key)}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_where(source, key)}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, Path):
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{_where(source, key)}: expected a path, got {value!r}")
        return Path(value)
    raise ConfigError(f"{_where(source, key)}: unsupported field type {tp!r}")


def _convert_dataclass(cls: Any, value: Any, source: str, key: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(source, key)}: expected a mapping, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        path = ", ".join(f"'{key + '.' if key else ''}{name}'" for name in unknown)
        raise ConfigError(f"{source}: unknown key {path} (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, field in fields.items():
        sub_key = f"{key}.{name}" if key else name
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], source, sub_key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_where(source, sub_key)}: required but missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_where(source, key)}: {exc}") from exc
