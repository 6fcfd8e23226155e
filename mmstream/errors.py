"""One exception base class for everything mmstream raises on purpose.

Every message says what failed, which name/endpoint/file, and what was expected.
"""


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
