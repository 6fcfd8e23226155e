"""Where the pretrained files and built packages live, and their checks: the layer run-time code uses.

Nothing here downloads or builds (that is :mod:`mmstream.pretrained.fetch` and the builders,
:mod:`~mmstream.pretrained.default_model` and :mod:`~mmstream.pretrained.minilm_export`); run-time
scoring (face detection, VAD, text emotion) and the inference node find their files through
:func:`require_file` / :func:`default_model_dir`, which raise a
:class:`~mmstream.errors.ModelError` naming the command to run when something is missing.

Cache layout (``$MMSTREAM_MODELS_DIR``, default ``~/.cache/mmstream/models``)::

    files/<package>-<version>/<file name>     the verified pretrained files
    text_encoder/minilm.onnx, tokenizer.json, text_emotion.json   the MiniLM text encoder (optional)
    face_detector/pnet.onnx, rnet.onnx, onet.onnx, mtcnn.json     the MTCNN face detector
    default/model.onnx, default/model.json    the default fused model package
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mmstream.errors import ModelError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
FETCH_COMMAND = "mmstream models fetch"
DEFAULT_MODEL_SUBDIR = "default"
TEXT_ENCODER_SUBDIR = "text_encoder"
FACE_DETECTOR_SUBDIR = "face_detector"


def models_dir() -> Path:
    """The cache directory: ``$MMSTREAM_MODELS_DIR`` or ``~/.cache/mmstream/models``."""
    env = os.environ.get("MMSTREAM_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmstream" / "models"


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    path = path or MANIFEST_PATH
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read the models manifest {path}: {e}") from e
    for name, entry in manifest["files"].items():
        if entry["package"] not in manifest["packages"]:
            raise ModelError(f"{path}: file {name!r} names package {entry['package']!r}, which is not listed")
    return manifest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_file_path(name: str, *, root: str | Path | None = None, manifest: dict[str, Any] | None = None) -> Path:
    """Where file ``name`` of the manifest lives in the cache (whether or not it is there)."""
    manifest = manifest or load_manifest()
    if name not in manifest["files"]:
        raise ModelError(f"no pretrained file {name!r} in the models manifest (known: {sorted(manifest['files'])})")
    entry = manifest["files"][name]
    version = manifest["packages"][entry["package"]]["version"]
    base = Path(root) if root else models_dir()
    return base / "files" / f"{entry['package']}-{version}" / (entry.get("cache_name")
                                                                 or Path(entry["path_in_wheel"]).name)


def optional_of(name: str, manifest: dict[str, Any]) -> str | None:
    """The option (e.g. ``"minilm"``) that file ``name``'s package belongs to; None when it is required."""
    return manifest["packages"][manifest["files"][name]["package"]].get("optional")


@functools.lru_cache(maxsize=256)
def _sha_of_version(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of one version (path, size, mtime) of a file: a process hashes each version once."""
    return sha256_of(Path(path))


def verified_sha(path: Path) -> str:
    """sha256 of ``path``, computed once per process for each (size, mtime) the file has had."""
    st = path.stat()
    return _sha_of_version(str(path), st.st_size, st.st_mtime_ns)


def require_file(name: str, *, root: str | Path | None = None) -> Path:
    """The verified cached path of pretrained file ``name``; a clear error if missing or altered."""
    manifest = load_manifest()
    path = cached_file_path(name, root=root, manifest=manifest)
    entry = manifest["files"][name]
    if not path.is_file():
        raise ModelError(f"pretrained file {name!r} ({entry['path_in_wheel']} from "
                         f"{entry['package']}) is not in the cache at {path}: run `{FETCH_COMMAND}` "
                         f"(set MMSTREAM_MODELS_DIR to use another cache directory)")
    sha = verified_sha(path)
    if sha != entry["sha256"]:
        raise ModelError(f"pretrained file {path} has sha256 {sha}, expected {entry['sha256']}: "
                         f"delete it and run `{FETCH_COMMAND}`")
    return path


def face_detector_dir(*, root: str | Path | None = None) -> Path:
    """The MTCNN face detector (three ONNX files built from facenet-pytorch's weights); a clear error if not built."""
    d = (Path(root) if root else models_dir()) / FACE_DETECTOR_SUBDIR
    if not all((d / f).is_file() for f in ("pnet.onnx", "rnet.onnx", "onet.onnx")):
        raise ModelError(f"the MTCNN face detector is not built at {d}: run `{FETCH_COMMAND}` "
                         f"(set MMSTREAM_MODELS_DIR to use another cache directory)")
    return d


def default_model_dir(*, root: str | Path | None = None) -> Path:
    """The default fused model package (model.onnx + model.json); a clear error if not built yet."""
    d = (Path(root) if root else models_dir()) / DEFAULT_MODEL_SUBDIR
    if not (d / "model.onnx").is_file() or not (d / "model.json").is_file():
        raise ModelError(f"the default model package is not built at {d}: run `{FETCH_COMMAND}` "
                         f"(set MMSTREAM_MODELS_DIR to use another cache directory)")
    return d


def resolve_model_dir(model: str | Path | None) -> Path:
    """A model package path for a node parameter: "" / None / "default" -> the default model package."""
    if model is None or str(model) in ("", "default"):
        return default_model_dir()
    return Path(model).expanduser()
