"""One exception base class for everything mmstream raises on purpose.

Every message says what failed, which name/endpoint/file, and what was expected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class MmstreamError(Exception):
    """Base class of every error mmstream raises deliberately."""


class WireError(MmstreamError):
    """A frame on a socket could not be decoded (unknown schema, wrong version, truncated, oversized)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # short kind, used to count and log once per kind
        self.detail = detail


class ParameterError(MmstreamError):
    """A node parameter is unknown, of the wrong type, or out of range."""


class LaunchError(MmstreamError):
    """A launch file is invalid; raised before any process starts."""


class DeviceNotFoundError(MmstreamError):
    """A camera, microphone or GPU that was asked for does not exist."""


class BagError(MmstreamError):
    """A bag file is missing, truncated, corrupt, or holds something we cannot play."""


class ModelError(MmstreamError):
    """A model file is missing, corrupt, or does not match its configuration."""


class BackendError(MmstreamError):
    """An inference backend cannot be created or failed while running."""


class MessageError(MmstreamError, ValueError):
    """A message about to be published is inconsistent (its fields disagree with its arrays)."""


class BadWindowError(MmstreamError):
    """A window that preprocessing must reject (wrong shapes, dtype or encoding, no samples, ...).

    Raised before any per-stream state (face tracks, VAD) moves, so the caller can drop the window,
    count it and go on; every other exception from preprocessing is a bug and should surface.
    """


class MissingExtraError(MmstreamError):
    """An optional dependency is not installed; the message names the extra of mmstream that brings it."""


#: optional module -> the extra of mmstream (pyproject.toml) that installs it
OPTIONAL_MODULES = {"torch": "train", "onnx": "train", "onnxscript": "train", "h5py": "train",
                    "matplotlib": "train", "skimage": "train", "safetensors": "train", "tensorrt": "tensorrt",
                    "foxglove": "viz"}


def missing_extra(module: str, purpose: str) -> MissingExtraError:
    """The error for optional ``module`` (top-level name) missing while doing ``purpose``."""
    top = module.split(".")[0]
    extra = OPTIONAL_MODULES.get(top)
    hint = f"pip install 'mmstream[{extra}]'" if extra else f"pip install {top}"
    return MissingExtraError(f"{purpose} needs the optional package {top!r}, which is not installed: {hint}")


def missing_optional_module(exc: BaseException) -> str | None:
    """The optional module (a key of :data:`OPTIONAL_MODULES`) whose absence raised ``exc`` or caused it
    (followed through ``__cause__`` / ``__context__``, as exporters wrap import errors); None otherwise."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ModuleNotFoundError) and (cur.name or "").split(".")[0] in OPTIONAL_MODULES:
            return (cur.name or "").split(".")[0]
        cur = cur.__cause__ or cur.__context__
    return None


@contextlib.contextmanager
def optional_dependency(purpose: str) -> Iterator[None]:
    """Inside, an optional module that is missing (directly or as the cause of what is raised) becomes
    a :class:`MissingExtraError` naming ``purpose`` and the extra that brings the module."""
    try:
        yield
    except MissingExtraError:
        raise
    except Exception as exc:
        module = missing_optional_module(exc)
        if module is None:
            raise
        raise missing_extra(module, purpose) from exc
