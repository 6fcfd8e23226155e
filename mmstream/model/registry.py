"""Model variants registered by name: ``create_model("fused_v1")``, ``list_variants()``.

A variant is a function returning a FusedModelConfig; overrides are applied on top
(``get_config("fused_v1", fusion="attention")``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from mmstream.model.config import FUSIONS, FusedModelConfig, TextConfig

_VARIANTS: dict[str, Callable[[], FusedModelConfig]] = {}
DEFAULT_VARIANT = "fused_v1"


def register_variant(name: str) -> Callable[[Callable[[], FusedModelConfig]], Callable[[], FusedModelConfig]]:
    def deco(fn: Callable[[], FusedModelConfig]) -> Callable[[], FusedModelConfig]:
        if name in _VARIANTS:
            raise ValueError(f"model variant {name!r} registered twice")
        _VARIANTS[name] = fn
        return fn

    return deco


def list_variants() -> list[str]:
    return sorted(_VARIANTS)


def get_config(name: str = DEFAULT_VARIANT, **overrides: Any) -> FusedModelConfig:
    if name not in _VARIANTS:
        raise KeyError(f"unknown model variant {name!r} (known: {list_variants()})")
    cfg = _VARIANTS[name]()
    cfg = dataclasses.replace(cfg, name=name)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def create_model(name: str = DEFAULT_VARIANT, **overrides: Any):  # -> FusedModel (torch import deferred)
    from mmstream.model.fused import FusedModel

    return FusedModel(get_config(name, **overrides))


@register_variant("fused_v1")
def _fused_v1() -> FusedModelConfig:
    """Default: small CNNs + GRU text, gated fusion, emotion and detection heads (CPU real-time)."""
    return FusedModelConfig(fusion="gated")


for _fusion in FUSIONS:
    if _fusion != "gated":
        register_variant(f"fused_v1_{_fusion}")(lambda f=_fusion: FusedModelConfig(fusion=f))


@register_variant("fused_v1_xformer")
def _fused_v1_xformer() -> FusedModelConfig:
    """Cross-modal attention fusion with a 2-layer transformer text encoder."""
    return FusedModelConfig(fusion="attention", text=TextConfig(encoder="transformer", layers=2))


@register_variant("fused_v1_emotion")
def _fused_v1_emotion() -> FusedModelConfig:
    return FusedModelConfig(heads=("emotion",))


@register_variant("fused_v1_detection")
def _fused_v1_detection() -> FusedModelConfig:
    return FusedModelConfig(heads=("detection",))
