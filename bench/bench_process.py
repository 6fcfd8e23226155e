"""`mmstream process` throughput: the same bags through the socket graph, in-process, a pool and Ray.

    python bench/bench_process.py [--copies 4] [--bag mmstream/data/sample.mcap] [--skip-ray]

Cases, in one run, on ``--copies`` copies of the bag (distinct files: each has its own hash):
  graph      `bag play --fast` -> synchronizer node -> inference node (bench_bag.bench_replay, one
             copy: its rate is per bag; time from the player's "playing" line to the last estimate)
  inline_1   `mmstream process --workers 1`: the in-process pipeline in this process, one core
  pool_2     `--workers 2`: a local process pool of 2 single-core workers
  ray_2      `--ray local` with ray.init(num_cpus=2)
For each: x real time (recording seconds per wall second once workers are up, and including their
start-up), windows/s, and worker CPU seconds per window (process_time inside the tasks). Each
in-process case runs ``--repeats`` times; medians are reported. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def make_copies(bag: Path, n: int, out: Path) -> list[str]:
    from mmstream.bag.reader import BagReader
    from mmstream.bag.writer import BagWriter

    paths = []
    messages = list(BagReader(bag).messages())
    for i in range(n):
        p = out / f"copy{i}.mcap"
        w = BagWriter(p, metadata={"copy": {"n": str(i)}})
        for bm in messages:
            w.write(bm.topic, bm.msg, bm.log_time_ns)
        w.close()
        paths.append(str(p))
    return paths


def run_case(bags: list[str], tmp: Path, name: str, repeats: int, **kw: object) -> dict:
    from mmstream.process import ProcessConfig, process_bags

    runs = []
    for r in range(repeats):
        s = process_bags(bags, tmp / f"{name}_{r}", ProcessConfig(), **kw)  # type: ignore[arg-type]
        cpu = sum(b["cpu_s"] for b in s.bags)
        runs.append({"x_realtime": s.x_realtime_running, "x_realtime_with_startup": s.x_realtime,
                     "windows_per_s": s.windows / s.run_s, "cpu_s_per_window": cpu / max(1, s.windows),
                     "startup_s": s.startup_s, "run_s": s.run_s, "windows": s.windows})
    med = {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]}
    med["runs"] = [round(r["x_realtime"], 2) for r in runs]
    return med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bag", default=str(REPO / "mmstream/data/sample.mcap"))
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-graph", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="mmstream-bench-process-"))
    bags = make_copies(Path(args.bag), args.copies, tmp)
    out: dict = {"bags": len(bags), "bag": args.bag}
    if not args.skip_graph:
        from bench_bag import bench_replay
        from mmstream.pretrained.fetch import default_model_dir

        g = bench_replay(Path(bags[0]), True, str(default_model_dir()))
        out["graph"] = {"x_realtime": g.get("realtime_factor"), "windows_per_s": g.get("estimates_per_s"),
                        "windows": g.get("estimates"), "cpu_s_per_window": None, "wall_s": g.get("wall_s"),
                        "note": "player + synchronizer + inference processes on the 2 cores; one copy"}
    out["inline_1"] = run_case(bags, tmp, "inline", args.repeats, workers=1)
    out["pool_2"] = run_case(bags, tmp, "pool", args.repeats, workers=2)
    if not args.skip_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_init_s = time.perf_counter() - t0
        try:
            out["ray_2"] = run_case(bags, tmp, "ray", args.repeats, ray="local")
            out["ray_2"]["ray_init_s"] = round(ray_init_s, 2)
        finally:
            ray.shutdown()
    base = out["inline_1"]["x_realtime"]
    out["ratios"] = {"inline_1_vs_graph": round(base / out["graph"]["x_realtime"], 2) if out.get("graph") else None,
                     "pool_2_vs_inline_1": round(out["pool_2"]["x_realtime"] / base, 2),
                     "ray_2_vs_pool_2": round(out["ray_2"]["x_realtime"] / out["pool_2"]["x_realtime"], 2)
                     if "ray_2" in out else None}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
