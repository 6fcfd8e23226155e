"""Model-spec parameters (``model.json`` ``preprocessing.params``) parsed into frozen dataclasses.

Like launch files: every key is read, so a typo is a :class:`~mmstream.errors.ModelError` naming
the file, the section, the key and the keys allowed; a missing key without a default, or a value
of the wrong type, is one too. Nested dataclass fields are nested sections. Field types: bool,
int, float (an int is accepted), str and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

from mmstream.errors import ModelError

T = TypeVar("T")


def parse_params(cls: type[T], raw: Any, *, file: str | Path, section: str = "preprocessing.params") -> T:
    """``cls`` (a frozen dataclass) from the map ``raw`` read from ``file``; ModelError on any mismatch."""
    where = f"{file}: {section}"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ModelError(f"{where} must be a map, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ModelError(f"{where}: missing key {name!r} (keys: {sorted(fields)})")
            continue
        values[name] = _value(hints[name], raw[name], f"{where}.{name}", file, f"{section}.{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # __post_init__ range checks
        raise ModelError(f"{where}: {exc}") from exc


def _value(kind: Any, value: Any, where: str, file: str | Path, section: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return parse_params(kind, value, file=file, section=section)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"parse_params: no rule for field type {kind!r} ({where})")
    if not ok:
        raise ModelError(f"{where} is {value!r} ({type(value).__name__}); expected {getattr(kind, '__name__', kind)}")
    return value
