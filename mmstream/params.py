"""Declared node parameters: name, default, type, range, choices; validated before a node starts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from mmstream.errors import ParameterError

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


@dataclass(frozen=True)
class Param:
    """One declared parameter. ``type`` defaults to the type of ``default``."""

    name: str
    default: Any
    type: type | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    @property
    def value_type(self) -> type:
        if self.type is not None:
            return self.type
        return type(self.default) if self.default is not None else str

    def coerce(self, node: str, value: Any) -> Any:
        """Check and convert ``value``; raise ParameterError naming node, parameter and expectation."""
        t = self.value_type
        where = f"node {node!r} parameter {self.name!r}"
        if value is None and self.default is None:
            return None
        if isinstance(value, str) and t is not str:
            value = parse_scalar(value)
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if t is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if t is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, t) or (t is int and isinstance(value, bool)):
            raise ParameterError(f"{where}: got {value!r} ({type(value).__name__}), expected {t.__name__}")
        if self.min is not None and value < self.min:
            raise ParameterError(f"{where}: {value!r} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ParameterError(f"{where}: {value!r} is above the maximum {self.max}")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"{where}: {value!r} is not one of {list(self.choices)}")
        return value


def parse_scalar(text: str) -> Any:
    """Parse a command-line value the way YAML would ('3' -> 3, 'true' -> True, '[1, 2]' -> list)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


#: parameters every node has
COMMON_PARAMS = (
    Param("use_sim_time", False, doc="follow the bag player's /clock instead of the host clock"),
    Param("stats_period_s", 1.0, min=0.05, doc="period of NodeStats on /<node>/stats"),
    Param("max_message_bytes", 64 * 1024 * 1024, min=1024, doc="size cap per received message"),
    Param("log_level", "info", choices=("debug", "info", "warning", "error")),
    Param("drain_timeout_s", 2.5, min=0.0, doc="at the end, how long reliable publishers may take to hand what "
                                               "they still queue to slow subscribers (they exit once it is sent)"),
)


def resolve(node: str, declared: Iterable[Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Validated values for every declared parameter; unknown names are an error."""
    specs = {p.name: p for p in (*COMMON_PARAMS, *declared)}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ParameterError(f"node {node!r}: unknown parameter(s) {unknown}; declared: {sorted(specs)}")
    return {name: spec.coerce(node, given.get(name, spec.default)) for name, spec in specs.items()}


def load_params_file(path: str, node: str) -> dict[str, Any]:
    """Read a YAML parameter file: either a flat map, or ROS 2 style ``{node: {ros__parameters: {...}}}``."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ParameterError(f"node {node!r}: cannot read parameter file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"node {node!r}: parameter file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"node {node!r}: parameter file {path} must hold a map, got {type(data).__name__}")
    for key in (node, "/**"):
        section = data.get(key)
        if isinstance(section, dict) and "ros__parameters" in section:
            return dict(section["ros__parameters"] or {})
    return data


def config_params(config_cls: type, *, docs: Mapping[str, str] | None = None,
                  minimum: Mapping[str, float] | None = None, exclude: Iterable[str] = ()) -> list[Param]:
    """Node parameters derived from a frozen config dataclass, so the two never disagree.

    A field ``x_ns`` (integer nanoseconds) becomes the parameter ``x_s`` (float seconds); a tuple of
    strings becomes a list; everything else keeps its name, default and type. ``docs`` and
    ``minimum`` are keyed by parameter name. Read the values back with :func:`config_from_params`.
    """
    import dataclasses

    docs, minimum, skip = dict(docs or {}), dict(minimum or {}), set(exclude)
    out = []
    for f in dataclasses.fields(config_cls):
        if f.name in skip or f.default is dataclasses.MISSING:
            continue
        name, default = f.name, f.default
        if name.endswith("_ns"):
            name, default = name[:-3] + "_s", default / 1e9
        elif isinstance(default, tuple):
            default = list(default)
        elif default is None:
            continue  # not a node parameter: set in code
        out.append(Param(name, default, min=minimum.pop(name, None), doc=docs.pop(name, "")))
    unknown = sorted(set(docs) | set(minimum))
    if unknown:
        raise ValueError(f"{config_cls.__name__}: docs/minimum for unknown parameter(s) {unknown}")
    return out


def config_from_params(config_cls: type, params: Mapping[str, Any], **overrides: Any) -> Any:
    """Build ``config_cls`` from node parameters made by :func:`config_params` (``*_s`` -> ``*_ns``)."""
    import dataclasses

    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if f.name in overrides:
            kwargs[f.name] = overrides[f.name]
        elif f.name.endswith("_ns") and f.name[:-3] + "_s" in params:
            kwargs[f.name] = int(round(params[f.name[:-3] + "_s"] * 1e9))
        elif f.name in params:
            value = params[f.name]
            kwargs[f.name] = tuple(value) if isinstance(f.default, tuple) else value
    return config_cls(**kwargs)
