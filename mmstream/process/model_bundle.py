"""A model package as bytes, to ship to workers once (Ray's object store) instead of re-reading it per task.

The bundle holds the package directory, the directories its preprocessing parameters point at
(``*_dir``, e.g. the MiniLM text encoder ``../text_encoder``) and, for the pretrained default
package, the cached pretrained files its preprocessor opens at run time (the face cascade and
Silero VAD). It is laid out like the models cache, so a worker unpacks it into a temporary
directory, points ``MMSTREAM_MODELS_DIR`` there, and opens the package from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mmstream.errors import ModelError

#: pretrained files a preprocessor opens at run time (mmstream/pretrained/manifest.json names)
RUNTIME_FILES = ("face_detector", "speech_activity")
#: directories ``mmstream models fetch`` builds that a preprocessor opens at run time
RUNTIME_DIRS = ("face_detector",)


@dataclass(frozen=True)
class ModelBundle:
    package: str                        # the package directory, relative to the bundle root
    files: tuple[tuple[str, bytes], ...]  # (relative path, content)
    digest: str

    @property
    def size_bytes(self) -> int:
        return sum(len(b) for _, b in self.files)


def resolve_model(model: str) -> Path:
    if model == "default":
        from mmstream.pretrained.fetch import default_model_dir

        return default_model_dir()
    p = Path(model).expanduser().resolve()
    if not (p / "model.json").is_file():
        raise ModelError(f"model package {p}: no model.json (expected a package directory from `mmstream model "
                         f"export`, or 'default')")
    return p


def _tree(root: Path, base: Path) -> list[tuple[str, bytes]]:
    return [(str(f.relative_to(base)), f.read_bytes()) for f in sorted(root.rglob("*")) if f.is_file()]


def make_bundle(model: str) -> ModelBundle:
    pkg = resolve_model(model)
    base = pkg.parent
    spec = json.loads((pkg / "model.json").read_text())
    params = spec.get("preprocessing", {}).get("params", {})
    files = _tree(pkg, base)
    for key, rel in sorted(params.items()):
        if key.endswith("_dir") and isinstance(rel, str):
            d = (pkg / rel).resolve()
            if d.is_dir() and d.parent == base:
                files += _tree(d, base)
    from mmstream.pretrained.fetch import cached_file_path, models_dir

    if pkg.parent == models_dir().resolve():
        for name in RUNTIME_FILES:
            f = cached_file_path(name)
            if f.is_file():
                files.append((str(f.relative_to(base)), f.read_bytes()))
        for subdir in RUNTIME_DIRS:  # built at fetch time (the MTCNN face detector's ONNX files)
            d = base / subdir
            if d.is_dir():
                files += _tree(d, base)
    h = hashlib.sha256()
    for rel, data in files:
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return ModelBundle(pkg.name, tuple(files), h.hexdigest()[:16])


def unpack(bundle: ModelBundle, root: Path | None = None) -> Path:
    """Write the bundle under ``root`` (a new temporary directory by default) and point the models
    cache there; returns the package directory."""
    root = Path(root) if root else Path(tempfile.mkdtemp(prefix=f"mmstream-model-{bundle.digest}-"))
    for rel, data in bundle.files:
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    os.environ["MMSTREAM_MODELS_DIR"] = str(root)
    return root / bundle.package


def package_hash(model: str) -> str:
    """sha256 of the package's files (what decides results), 16 hex digits."""
    pkg = resolve_model(model)
    h = hashlib.sha256()
    for rel, data in _tree(pkg, pkg):
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]
