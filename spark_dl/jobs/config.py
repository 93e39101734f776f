"""Job configuration: one YAML file per pipeline, validated on load.

Every key is declared with its type, default and allowed values; an unknown key, a
missing file or a bad value raises :class:`ConfigError` naming the file and the dotted
key (with a suggestion for a misspelt key) before any Spark job starts.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Callable


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Field:
    """One scalar or free-form key: its type(s), default, and an optional check."""

    types: tuple[type, ...]
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], bool] | None = None
    expected: str = ""  # words for the error message, e.g. "an int >= 1"

    def validate(self, value: Any, where: str) -> Any:
        if value is None:
            if self.required:
                raise ConfigError(f"{where} is required ({self.describe()}).")
            return self.default
        if bool in self.types or not isinstance(value, bool):
            ok_type = isinstance(value, self.types)
        else:
            ok_type = False  # YAML true/false is not an int
        if float in self.types and isinstance(value, int) and not isinstance(value, bool):
            value, ok_type = float(value), True
        if not ok_type or (self.choices and value not in self.choices) or (
                self.check and not self.check(value)):
            raise ConfigError(f"{where} must be {self.describe()}. Got {value!r}.")
        return value

    def describe(self) -> str:
        if self.expected:
            return self.expected
        if self.choices:
            return f"one of {list(self.choices)}"
        return " or ".join(f"a {t.__name__}" for t in self.types)


def Int(default: int | None = None, *, minimum: int | None = None, required: bool = False) -> Field:
    """An integer field (>= ``minimum`` when given)."""
    words = f"an int >= {minimum}" if minimum is not None else "an int"
    return Field((int,), default, required, None,
                 (lambda v: v >= minimum) if minimum is not None else None, words)


def Float(default: float | None = None, *, low: float | None = None, high: float | None = None,
          open_low: bool = False, open_high: bool = False) -> Field:
    """A number in a range (bounds inclusive unless marked open)."""
    def check(v: float) -> bool:
        return ((low is None or (v > low if open_low else v >= low))
                and (high is None or (v < high if open_high else v <= high)))
    lo = "" if low is None else ("(" if open_low else "[") + f"{low}"
    hi = "" if high is None else f"{high}" + (")" if open_high else "]")
    words = f"a number in {lo}, {hi}" if lo and hi else ("a number" if not lo else
                                                         f"a number {'>' if open_low else '>='} {low}")
    return Field((float,), default, False, None, check, words)


def Str(default: str | None = None, *, choices: tuple[str, ...] | None = None,
        required: bool = False) -> Field:
    """A string field, optionally one of ``choices``."""
    return Field((str,), default, required, choices)


def Bool(default: bool) -> Field:
    """A true/false field."""
    return Field((bool,), default, expected="true or false")


def Mapping(default: dict[str, Any] | None = None) -> Field:
    """A free-form mapping (checked later by what consumes it, e.g. a network's arguments)."""
    return Field((dict,), dict(default or {}), expected="a mapping")


def Strings(default: list[str] | None = None) -> Field:
    """A list of strings."""
    return Field((list,), list(default or []),
                 check=lambda v: all(isinstance(x, str) for x in v), expected="a list of strings")


Schema = dict[str, Any]  # name -> Field or nested Schema


def param_schema(stage_class: type) -> Schema:
    """The config keys of a stage's Params (rows with ``config``), with the Params' own
    types, defaults and constraints: ``{"training": {"max_epochs": Field, ...}, ...}``."""
    import json

    from spark_dl.param_table import KINDS, config_rows, defaults

    own = defaults(stage_class)  # the stage's defaults, its overrides included
    out: Schema = {}
    for spec in config_rows(stage_class):
        section, key = str(spec.config).split(".")
        default = own.get(spec.name)
        if spec.kind == "json":
            default = json.loads(default or "{}")
        check = spec.check
        # YAML has numbers and true/false, not floats and bools: say it in its words.
        words = check.words.replace("a float", "a number") if check else (
            "true or false" if spec.kind == "bool" else "")
        out.setdefault(section, {})[key] = Field(
            KINDS[spec.kind].yaml_types, default, check=check.test if check else None,
            expected=words)
    return out


def stage_kwargs(cfg: dict[str, Any], stage_class: type) -> dict[str, Any]:
    """Keyword arguments for ``stage_class`` from the config keys :func:`param_schema` made
    (keys left unset are left to the Params' defaults)."""
    from spark_dl.param_table import config_rows

    out: dict[str, Any] = {}
    for spec in config_rows(stage_class):
        section, key = str(spec.config).split(".")
        value = cfg.get(section, {}).get(key)
        if value is not None:
            out[spec.name] = value
    return out


def validate(data: Any, schema: Schema, where: str) -> dict[str, Any]:
    """Check ``data`` against ``schema``; return it with every default filled in."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values. Got {data!r}.")
    out: dict[str, Any] = {}
    for key in data:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown key '{_join(where, key)}'.{hint} Allowed here: "
                              f"{sorted(schema)}.")
    for key, spec in schema.items():
        path = _join(where, key)
        if isinstance(spec, dict):
            out[key] = validate(data.get(key), spec, path)
        else:
            out[key] = spec.validate(data.get(key), path)
    return out


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def merge(base: Schema, extra: Schema) -> Schema:
    """``base`` with ``extra`` merged in, section by section."""
    out = dict(base)
    for key, spec in extra.items():
        if isinstance(spec, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], spec)
        else:
            out[key] = spec
    return out


def read_yaml(path: str) -> dict[str, Any]:
    """Parse a YAML file into a mapping, with errors that name the file."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - dependency of the jobs extra
        raise ConfigError("Reading a config needs PyYAML: pip install 'spark-dl[jobs]'.") from None
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist.")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections. Got {data!r}.")
    return data


def set_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``section.key=value`` (value parsed as YAML) to a raw config mapping."""
    import yaml

    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value. Got {assignment!r}.")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section.")
    node[parts[-1]] = yaml.safe_load(raw)
