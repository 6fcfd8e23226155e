"""Helpers every package builder shares: skip a build that is up to date, build into a staging directory.

The builders (:mod:`~mmstream.pretrained.default_model`, :mod:`~mmstream.pretrained.minilm_export`)
import torch; this module does not. Run-time code imports none of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


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
