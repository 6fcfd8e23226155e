"""Wire format: one ZeroMQ multipart message = ``[topic, header, payload...]``.

* ``topic``: UTF-8 topic name (ZeroMQ filters subscriptions on it).
* ``header``: a msgpack map ``{"s": schema, "v": version, "t": stamp_ns, "q": seq,
  "f": frame_id, "d": {scalar fields}, "a": [[dtype, shape], ...]}``.
* ``payload``: one raw buffer per array field, in the class's ``ARRAYS`` order; sent without
  copying and received as views on the ZeroMQ frames.

No pickle anywhere. Decoding never trusts the sender: unknown schemas, wrong versions,
truncated or oversized frames raise :class:`~mmstream.errors.WireError` with a short reason.
This module imports no zmq: it works on lists of bytes-like objects.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from mmstream.errors import WireError
from mmstream.messages import REGISTRY, Header, Message, build

#: default cap on one message's total size (all frames), bytes
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: cap on the msgpack header alone
MAX_HEADER_BYTES = 1024 * 1024

_ALLOWED_DTYPES = {"|u1", "|b1", "<i2", "<i4", "<i8", "<f2", "<f4", "<f8", "|i1", "<u2", "<u4"}


def encode(topic: str, msg: Message, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[Any]:
    """Frames for ``msg`` on ``topic``. Arrays are passed through uncopied (C-contiguous)."""
    arrays = msg.array_fields()
    h = msg.header
    header = {
        "s": msg.SCHEMA,
        "v": msg.VERSION,
        "t": int(h.stamp_ns),
        "q": int(h.seq),
        "f": h.frame_id,
        "d": msg.scalar_fields(),
        "a": [[a.dtype.str, list(a.shape)] for a in arrays],
    }
    header_bytes = msgpack.packb(header, use_bin_type=True)
    total = len(header_bytes) + sum(a.nbytes for a in arrays)
    if total > max_message_bytes:
        raise WireError("oversized", f"{msg.SCHEMA} on {topic!r} is {total} bytes (cap {max_message_bytes})")
    return [topic.encode(), header_bytes, *arrays]


def decode(frames: Sequence[Any], *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> tuple[str, Message]:
    """Parse ``[topic, header, payload...]`` frames (bytes, memoryviews or zmq.Frame buffers)."""
    if len(frames) < 2:
        raise WireError("truncated", f"{len(frames)} frame(s), expected at least topic and header")
    views = [memoryview(getattr(f, "buffer", f)) for f in frames]
    total = sum(v.nbytes for v in views[1:])
    try:
        topic = bytes(views[0]).decode()
    except UnicodeDecodeError:
        raise WireError("bad-topic", "topic frame is not UTF-8") from None
    if total > max_message_bytes:
        raise WireError("oversized", f"message on {topic!r} is {total} bytes (cap {max_message_bytes})")
    if views[1].nbytes > MAX_HEADER_BYTES:
        raise WireError("oversized", f"header on {topic!r} is {views[1].nbytes} bytes (cap {MAX_HEADER_BYTES})")
    try:
        header = msgpack.unpackb(views[1], raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise WireError("bad-header", f"header on {topic!r} is not msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict) or not {"s", "v", "t", "q", "f", "d", "a"} <= header.keys():
        raise WireError("bad-header", f"header on {topic!r} lacks the keys s,v,t,q,f,d,a")
    schema = header["s"]
    cls = REGISTRY.get(schema) if isinstance(schema, str) else None
    if cls is None:
        raise WireError("unknown-schema", f"schema {schema!r} on {topic!r} (known: {sorted(REGISTRY)})")
    if header["v"] != cls.VERSION:
        raise WireError("wrong-version", f"{schema} version {header['v']!r} on {topic!r} (expected {cls.VERSION})")
    specs = header["a"]
    if not isinstance(specs, list) or len(specs) != len(views) - 2:
        raise WireError("truncated", f"{schema} on {topic!r}: header lists "
                        f"{len(specs) if isinstance(specs, list) else '?'} buffers, got {len(views) - 2}")
    arrays = []
    for i, (spec, view) in enumerate(zip(specs, views[2:])):
        dtype, shape, expected = _array_spec(schema, topic, i, spec)
        if view.nbytes != expected:
            raise WireError("truncated", f"{schema} on {topic!r}: buffer {i} has {view.nbytes} bytes, "
                            f"expected {expected} for {spec[0]}{list(shape)}")
        arrays.append(np.frombuffer(view, dtype=dtype).reshape(shape))
    t, q, f = header["t"], header["q"], header["f"]
    if not (isinstance(t, int) and isinstance(q, int) and isinstance(f, str)) or not isinstance(header["d"], dict):
        raise WireError("bad-header", f"{schema} on {topic!r}: stamp/seq must be int, frame_id str, d a map")
    try:
        msg = build(cls, Header(stamp_ns=t, seq=q, frame_id=f), header["d"], arrays)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise WireError("bad-fields", f"{schema} on {topic!r}: {exc}") from None
    return topic, msg


def _array_spec(schema: str, topic: str, i: int, spec: Any) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, byte size) for one ``[dtype, shape]`` entry, validated."""
    try:
        dtype_str, shape = spec
        return _checked_spec(dtype_str, tuple(shape))
    except (TypeError, ValueError) as exc:  # TypeError too for parts that cannot be hashed or counted
        raise WireError("bad-header", f"{schema} on {topic!r}: buffer {i} spec {spec!r}: {exc}") from None


#: a stream repeats the same few specs and this runs on every message's latency path; bounded, so a
#: sender cycling through shapes cannot grow it without limit
@functools.lru_cache(maxsize=1024)
def _checked_spec(dtype_str: str, shape: tuple[Any, ...]) -> tuple[np.dtype, tuple[int, ...], int]:
    if dtype_str not in _ALLOWED_DTYPES:
        raise ValueError(f"dtype {dtype_str!r} not allowed")
    dims = tuple(int(s) for s in shape)
    if any(s < 0 for s in dims) or any(type(s) is not int for s in shape):
        raise ValueError("dimensions must be non-negative integers")
    dtype = np.dtype(dtype_str)
    return dtype, dims, math.prod(dims) * dtype.itemsize


def peek_stamp(frames: Sequence[Any]) -> tuple[int, int] | None:
    """(stamp_ns, seq) without building the message; None if the header does not parse."""
    try:
        header = msgpack.unpackb(memoryview(getattr(frames[1], "buffer", frames[1])), raw=False)
        return int(header["t"]), int(header["q"])
    except Exception:
        return None
