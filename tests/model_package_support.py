"""A model package exported once (export takes ~20 s) and shared by the model, runtime and
inference-node tests. Import the fixture: ``from tests.model_package_support import model_package``.

The package is cached under the temp dir, keyed by a hash of the model/export source files and
the torch version, so a changed model is always re-exported and unchanged ones are reused.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import pytest


def export_default_package(directory: Path) -> Path:
    if not (directory / "model.json").is_file():
        import torch

        from mmstream.model.export import export_package
        from mmstream.model.registry import create_model
        from mmstream.preprocess.tokenizer import Vocab

        torch.manual_seed(0)
        tmp = Path(tempfile.mkdtemp(prefix=directory.name + ".partial-", dir=directory.parent))
        export_package(create_model("fused_v1").eval(), Vocab.default(), tmp)
        try:
            tmp.rename(directory)
        except OSError:  # another test process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _source_key() -> str:
    import torch

    root = Path(__file__).resolve().parents[1] / "mmstream"
    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted([*(root / "model").glob("*.py"), *(root / "preprocess").glob("*.py")]):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def model_package() -> Path:
    """Directory of an exported (untrained, seed 0) fused_v1 package: fp32 + fp16 ONNX, golden.npz.
    Tests must not modify it (copy it with copy_package first)."""
    cache = Path(tempfile.gettempdir()) / "mmstream-test-packages"
    cache.mkdir(exist_ok=True)
    return export_default_package(cache / f"fused_v1-{_source_key()}")


def copy_package(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
