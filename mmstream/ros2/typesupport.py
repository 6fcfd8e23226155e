"""Type support for one ROS 2 message type: CDR codec, RIHS01 hash and the DDS type the bridge registers.

The codec is the one the bag code uses (``mcap_ros2``'s generated CDR encoder/decoder, XCDR1
little-endian with the ``00 01 00 00`` header). The DDS side is a Cyclone DDS ``IdlStruct`` with
the type's real DDS name and fields (so peers that check XTypes type information see the true
type), whose ``serialize`` hands Cyclone the bytes the codec already wrote and whose
``deserialize`` hands back the received bytes untouched: :class:`RawSample`. That is the bulk
fast path: cyclonedds-python's own packer walks a ``sequence<uint8>`` element by element
(136–245 ms per VGA frame), while one copy of pre-serialized bytes costs well under a
millisecond (``mmstream bench ros``). The hash is computed by rosbags from the same definitions
(so a definition typed wrong here shows up as a hash that differs from what ROS 2 prints).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mmstream.ros2 import Ros2Error
from mmstream.ros2 import definitions as defs
from mmstream.ros2.naming import dds_type, full_type

CDR_LE_HEADER = b"\x00\x01\x00\x00"  # XCDR1 (plain CDR) little endian, options 0


@dataclass(frozen=True)
class TypeSupport:
    """Everything the bridge needs to speak one ROS 2 type."""

    ros_type: str                             # pkg/msg/Name
    dds_name: str                             # pkg::msg::dds_::Name_
    type_hash: str                            # RIHS01_<64 hex>
    encode: Callable[[Any], bytes]            # dict/attribute message -> CDR (with encapsulation header)
    decode: Callable[[bytes], Any]            # CDR -> attribute object (SimpleNamespace)

    @property
    def user_data(self) -> bytes:
        """Endpoint USER_DATA, as rmw_cyclonedds_cpp writes it."""
        return f"typehash={self.type_hash};".encode()

    def dds_class(self) -> type:
        """The Cyclone DDS type (imports cyclonedds; only the DDS layer calls this)."""
        return _dds_class(self.ros_type)


@lru_cache(maxsize=None)
def type_support(ros_type: str) -> TypeSupport:
    """Type support for ``ros_type`` (cached); :class:`Ros2Error` if we have no definition for it."""
    from mcap_ros2._dynamic import generate_dynamic, serialize_dynamic  # the bag code's CDR codec

    name = full_type(ros_type)
    text = defs.schema_text(name)
    try:
        enc = serialize_dynamic(name, text)[name]
        dec = generate_dynamic(name, text)[name]
    except Exception as exc:  # the generator raises its own error kinds on a bad definition
        raise Ros2Error(f"{name}: cannot build a CDR codec from its definition: {exc}") from None
    return TypeSupport(ros_type=name, dds_name=dds_type(name), type_hash=rihs01(name), encode=enc, decode=dec)


@lru_cache(maxsize=None)
def rihs01(ros_type: str) -> str:
    """The RIHS01 type hash (REP 2016) of ``ros_type`` from our definitions, computed by rosbags."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    name = full_type(ros_type)
    store = get_typestore(Stores.EMPTY)
    types: dict[str, Any] = {}
    for t in [name, *defs.dependencies(name)]:
        types.update(get_types_from_msg(defs.definition(t, name), t))
    store.register(types)
    return store.hash_rihs01(name)


# --------------------------------------------------------------------------- the DDS type

class RawSample:
    """What the bridge's DDS readers return and writers take: one sample's CDR bytes.

    Readers set ``sample_info`` (Cyclone's SampleInfo: source timestamp, publication handle)."""

    cdr: bytes
    sample_info: Any


def _primitive_types() -> dict[str, Any]:
    from cyclonedds.idl import types as t
    return {"bool": bool, "byte": t.byte, "char": t.char, "float32": t.float32, "float64": t.float64,
            "int8": t.int8, "uint8": t.uint8, "int16": t.int16, "uint16": t.uint16, "int32": t.int32,
            "uint32": t.uint32, "int64": t.int64, "uint64": t.uint64, "string": str}


def _field_type(ftype: str, top: str, made: dict[str, type]) -> Any:
    from cyclonedds.idl import types as t

    base, arr = defs.base_of(ftype)
    if base == "wstring":
        raise Ros2Error(f"{top}: wstring fields are not supported")
    if defs.is_primitive(base):
        bound = ftype[len(base):].split("[")[0]
        inner: Any = t.bounded_str[int(bound[2:])] if base == "string" and bound.startswith("<=") else \
            _primitive_types()[base]
    else:
        inner = _struct(base, top, made)
    if not arr:
        return inner
    size = arr[1:-1]
    if size == "":
        return t.sequence[inner]
    if size.startswith("<="):
        return t.sequence[inner, int(size[2:])]
    return t.array[inner, int(size)]


def _struct(name: str, top: str, made: dict[str, type]) -> type:
    if name in made:
        return made[name]
    from cyclonedds.idl import make_idl_struct

    members = {fname: _field_type(ftype, top, made) for ftype, fname in defs.fields(name, top)}
    cls = make_idl_struct(dds_type(name).replace("::", "_"), dds_type(name), members)
    made[name] = cls
    return cls


def _serialize(self: Any, buffer: Any = None, endianness: Any = None, use_version_2: Any = None) -> bytes:
    return self.cdr


def _deserialize(cls: type, data: bytes, has_header: bool = True, use_version_2: Any = None) -> Any:
    sample = object.__new__(cls)
    sample.cdr = data
    return sample


@lru_cache(maxsize=None)
def _dds_class(ros_type: str) -> type:
    """An IdlStruct named and shaped like ``ros_type`` that carries pre-serialized CDR (see module doc).

    Its instances are :class:`RawSample`-like: make one with ``raw(cls, cdr)``."""
    made: dict[str, type] = {}
    cls = _struct(ros_type, ros_type, made)
    cls.serialize = _serialize                  # Cyclone's writer calls sample.serialize()
    cls.deserialize = classmethod(_deserialize)  # its reader calls data_type.deserialize(bytes)
    return cls


def raw(cls: type, cdr: bytes) -> Any:
    """A sample of the DDS class ``cls`` carrying ``cdr`` (checked: XCDR1 little/big endian header)."""
    if cdr[:2] not in (b"\x00\x00", b"\x00\x01"):
        raise Ros2Error(f"CDR for {getattr(cls, '__name__', cls)} starts {cdr[:4].hex()} "
                        f"(expected XCDR1 encapsulation 0000/0001)")
    return _deserialize(cls, cdr)
