"""Command lines derived from config dataclasses, so that a flag and its ``--help`` text live on the field.

Every DeepEyes CLI is ``transformers.HfArgumentParser`` over one or more dataclasses whose
fields carry ``metadata={"help": ...}`` (the LLaMA-Factory ``hparams/`` convention). Flags are
the field names in snake_case (``--model_path``, ``--log_level``); HfArgumentParser also accepts
the kebab spelling (``--model-path``) as an alias, and a boolean field that defaults to true
gets a ``--no_<name>`` switch. Parsing is strict: an unknown flag, or a value the dataclass
rejects in ``__post_init__``, ends the program with argparse's usage message and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import HfArgumentParser

from deepeyes.config import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class LoggingArguments:
    """The ``--log_level`` every CLI takes."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field(
        default="INFO", metadata={"help": "logging level of the deepeyes loggers and the libraries they call"}
    )

    def configure(self) -> None:
        """Install a root handler at ``log_level`` (once per process; later calls change nothing)."""
        logging.basicConfig(level=self.log_level, format=LOG_FORMAT)


@dataclass(frozen=True)
class QuietLoggingArguments(LoggingArguments):
    """``--log_level`` for interactive CLIs whose output is a progress bar or a table: warnings only by default."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field(
        default="WARNING", metadata={"help": "logging level (INFO shows service start-up and tool details)"}
    )


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's formatter that appends ``(default: …)`` to a flag's help, except where the help
    already says what the default means (``(default: each input's directory)``): printing
    ``(default: None)`` after it would contradict it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(default:" in action.help:
            return action.help
        return super()._get_help_string(action)


class ConfigArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` that leaves out fields with no command-line form.

    Mappings and nested dataclasses (e.g. the synthetic data's task mixture) get no flag and
    keep their defaults; code or a YAML config sets them.
    """

    def _add_dataclass_arguments(self, dtype: Any) -> None:
        hints = typing.get_type_hints(dtype)
        flaggable = [f for f in dataclasses.fields(dtype) if f.init and _has_flag_form(hints[f.name])]
        shadow = dataclasses.make_dataclass(
            dtype.__name__, [(f.name, hints[f.name], _copy_field(f)) for f in flaggable], frozen=True
        )
        if hasattr(dtype, "_argument_group_name"):
            shadow._argument_group_name = dtype._argument_group_name  # type: ignore[attr-defined]
        super()._add_dataclass_arguments(shadow)


def _has_flag_form(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return all(_has_flag_form(a) for a in typing.get_args(tp) if a is not type(None))
    return origin is not dict and tp is not dict and not dataclasses.is_dataclass(tp)


def _copy_field(original: dataclasses.Field) -> dataclasses.Field:
    kwargs: dict[str, Any] = {"metadata": original.metadata}
    if original.default is not dataclasses.MISSING:
        kwargs["default"] = original.default
    elif original.default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = original.default_factory
    return field(**kwargs)


def parse_cli(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    aliases: dict[str, str] | None = None,
) -> tuple[Any, ...]:
    """One instance of each dataclass in ``dataclass_types``, filled from ``argv``.

    ``aliases`` maps an extra flag (an older spelling) to the field it sets, e.g.
    ``{"--output": "output_dir"}``, or with ``no:`` to a boolean field it switches off
    (``{"--quiet": "no:progress"}``). An alias of a field is listed after its snake_case
    flag in ``--help``; a ``no:`` alias is accepted but not listed.
    A list-valued field repeated on the command line (``--set a=1 --set b=2``) collects
    every value. Exits with status 2 (argparse's usage error) on an unknown flag or a value
    a dataclass rejects; ``--help`` prints every field's help and default and exits 0.
    """
    parser = build_parser(dataclass_types, prog=prog, description=description, aliases=aliases)
    namespace = parser.parse_args(list(argv) if argv is not None else None)
    instances = []
    for dtype in dataclass_types:
        values = {}
        for f in dataclasses.fields(dtype):
            if f.init and hasattr(namespace, f.name):
                value = getattr(namespace, f.name)
                if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
                    value = [item for group in value for item in group]
                values[f.name] = value
        try:
            instances.append(dtype(**values))
        except (ValueError, TypeError, ConfigError) as exc:
            parser.error(str(exc))
    return tuple(instances)


def build_parser(
    dataclass_types: Sequence[type], *, prog: str, description: str, aliases: dict[str, str] | None = None
) -> ConfigArgumentParser:
    """The parser :func:`parse_cli` uses (exposed for documentation generators and tests)."""
    parser = ConfigArgumentParser(
        list(dataclass_types), prog=prog, description=description, allow_abbrev=False, formatter_class=DefaultsHelpFormatter
    )
    for action in parser._actions:  # argparse has no public list of actions
        if isinstance(action, argparse._StoreFalseAction) and f"--no_{action.dest}" in action.option_strings:
            # HfArgumentParser gives the ``--no_<name>`` complement the field's own help and
            # "(default: False)", which read as if it switched the field on.
            action.help = f"switch --{action.dest} off (the same as --{action.dest} false)"
            action.default = argparse.SUPPRESS  # the field's own flag holds the default
    for flag, dest in (aliases or {}).items():
        if dest.startswith("no:"):
            parser.add_argument(flag, dest=dest[3:], action="store_false", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        else:
            # The old spelling joins the field's own action, so that it also satisfies a required field.
            target = next(a for a in parser._actions if a.dest == dest)  # argparse has no public lookup by dest
            target.option_strings.append(flag)
            parser._option_string_actions[flag] = target
    return parser
