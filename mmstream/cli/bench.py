"""``mmstream bench NAME [args]``: run the benchmark program bench/bench_NAME.py (prints JSON)."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from mmstream.errors import MmstreamError, optional_dependency

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def register(sub: argparse._SubParsersAction) -> None:
    names = sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py")) if BENCH_DIR.is_dir() else []
    p = sub.add_parser("bench", help="run a benchmark program (JSON on stdout)",
                       description="benchmarks: " + (", ".join(names) or "none found"))
    p.add_argument("name", help=f"one of: {', '.join(names)}")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    path = BENCH_DIR / f"bench_{args.name}.py"
    if not path.is_file():
        raise MmstreamError(f"no benchmark {args.name!r}: expected {path} (benchmarks ship with the source checkout)")
    sys.argv = [str(path), *args.bench_args]
    try:
        with optional_dependency(f"`mmstream bench {args.name}`"):
            runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
