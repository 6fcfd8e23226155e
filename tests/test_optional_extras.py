"""A missing optional dependency stops a command with an error naming the extra that brings it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmstream.errors import MissingExtraError, MmstreamError, missing_optional_module, optional_dependency
from tests.conftest import REPO


def _blocked(modules: list[str], argv: list[str]) -> subprocess.CompletedProcess:
    """The mmstream command with ``modules`` made unimportable (as on an install without the extra)."""
    code = (f"import sys\nfor m in {modules!r}: sys.modules[m] = None\n"
            f"from mmstream.cli import main\nsys.exit(main({argv!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.timeout(150)
def test_bench_inference_without_onnxscript_names_the_train_extra() -> None:
    out = _blocked(["onnxscript"], ["bench", "inference", "--iters", "1"])
    assert out.returncode == 2, out.stderr[-2000:]
    assert "needs the optional package 'onnxscript'" in out.stderr and "pip install 'mmstream[train]'" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.timeout(150)
def test_model_export_without_torch_names_the_train_extra(tmp_path) -> None:  # noqa: ANN001
    out = _blocked(["torch"], ["model", "export", str(tmp_path / "pkg")])
    assert out.returncode == 2, out.stderr[-2000:]
    assert "`mmstream model export` needs the optional package 'torch'" in out.stderr
    assert "pip install 'mmstream[train]'" in out.stderr and "Traceback" not in out.stderr


def test_optional_dependency_follows_wrapped_import_errors() -> None:
    with pytest.raises(MissingExtraError, match=r"exporting needs the optional package 'h5py'.*mmstream\[train\]"):
        with optional_dependency("exporting"):
            try:
                raise ModuleNotFoundError("No module named 'h5py'", name="h5py")
            except ModuleNotFoundError as exc:
                raise RuntimeError("the exporter failed") from exc
    assert issubclass(MissingExtraError, MmstreamError)
    with pytest.raises(ModuleNotFoundError):  # a module that is not optional is a bug: it surfaces as it is
        with optional_dependency("x"):
            raise ModuleNotFoundError("No module named 'numpyy'", name="numpyy")
    assert missing_optional_module(ValueError("x")) is None
