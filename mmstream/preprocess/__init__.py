"""Preprocessing shared by every backend, and the registry that picks it from a model package.

A model package is a directory with ``model.onnx``, ``model.json`` (the spec), optional
``model.pt`` and ``vocab.txt``. ``spec["preprocessing"] = {"kind": <kind>, "params": {...}}``
names the preprocessor that turns windows into the model's inputs and outputs into results.

Interface (small on purpose)::

    from mmstream.preprocess import Preprocessor, WindowResult, register_preprocessor, get_preprocessor

    @register_preprocessor("my_kind")
    class MyPre(Preprocessor):
        def new_stream(self): ...                  # state carried window to window (or None)
        def prepare(self, windows, stream=None): ...  # -> ({input name: batched np.ndarray}, BatchContext)
        def postprocess(self, outputs, context): ...  # {output name: np.ndarray}, BatchContext -> list[WindowResult]

    pre = get_preprocessor(spec, package_dir)      # instance for spec["preprocessing"]["kind"]
    stream = pre.new_stream()
    feed, context = pre.prepare(windows, stream)   # BadWindowError for a window it must reject
    results = pre.postprocess(backend.infer(feed), context)

Lookup: a kind not yet registered is looked for in the module ``mmstream.preprocess.<kind>``
(imported on first use), so ``kind: "fused_v1"`` lives in ``mmstream/preprocess/fused_v1.py`` and
``kind: "pretrained_default"`` in ``mmstream/preprocess/pretrained_default.py``. Parameters are
parsed by the preprocessor from ``spec["preprocessing"]["params"]`` into a frozen dataclass
(:func:`mmstream.preprocess.spec_params.parse_params`: unknown keys are errors). numpy only: no torch here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from mmstream.errors import ModelError
from mmstream.preprocess.base import Preprocessor, WindowResult

__all__ = ["Preprocessor", "WindowResult", "register_preprocessor", "get_preprocessor", "registered_kinds"]

_REGISTRY: dict[str, type[Preprocessor]] = {}


def register_preprocessor(kind: str) -> Callable[[type[Preprocessor]], type[Preprocessor]]:
    """Class decorator: register ``cls`` under ``kind`` (a second, different class is an error)."""

    def deco(cls: type[Preprocessor]) -> type[Preprocessor]:
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise ValueError(f"preprocessor kind {kind!r} registered twice ({_REGISTRY[kind].__name__}, {cls.__name__})")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


def registered_kinds() -> list[str]:
    return sorted(_REGISTRY)


def get_preprocessor(spec: dict[str, Any], package_dir: str | Path = ".") -> Preprocessor:
    """The preprocessor named by ``spec["preprocessing"]["kind"]``; ModelError if unknown."""
    pre = spec.get("preprocessing")
    if not isinstance(pre, dict) or not isinstance(pre.get("kind"), str):
        raise ModelError(f"model spec {spec.get('name', '?')!r}: 'preprocessing' must be a map with a string 'kind'")
    kind = pre["kind"]
    if kind not in _REGISTRY and kind.isidentifier():
        try:
            importlib.import_module(f"mmstream.preprocess.{kind}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mmstream.preprocess.{kind}":
                raise
    if kind not in _REGISTRY:
        raise ModelError(f"model spec {spec.get('name', '?')!r}: unknown preprocessing kind {kind!r} "
                         f"(registered: {registered_kinds()}; expected a module mmstream/preprocess/{kind}.py)")
    return _REGISTRY[kind](spec, Path(package_dir))
