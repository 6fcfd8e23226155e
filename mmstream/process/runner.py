"""``process_bags``: a run from inputs to per-bag MCAPs, the tables and (optionally) the report.

Order of work: check the model (golden outputs) before touching any bag; prepare the output
directory (refuse other content unless resume / overwrite); hash and inspect every bag (a bag
that cannot be read, or has no topic the model needs, is reported, not run); skip bags done in
an earlier run (``resume``); run the rest as tasks on the executor; as the last range of a bag
comes back, write its MCAP and then its part (the "done" mark); rebuild the tables.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmstream.process.config import ProcessConfig
from mmstream.process.executors import make_executor
from mmstream.process.inputs import BagInput, find_bags, inspect_bag, plan_tasks
from mmstream.process.model_bundle import package_hash, resolve_model
from mmstream.process.outputs import FINAL, RUN_FORMAT, RUN_VERSION, OutputDir
from mmstream.process.task import TaskResult

log = logging.getLogger("mmstream.process")


@dataclass
class RunSummary:
    out_dir: Path
    bags: list[dict[str, Any]] = field(default_factory=list)  # the bags table
    windows: int = 0
    skipped: int = 0          # done in an earlier run
    recording_s: float = 0.0  # bag seconds processed in this run
    wall_s: float = 0.0
    cpu_s: float = 0.0
    executor: str = ""
    startup_s: float = 0.0    # starting the executor (workers up, model open in each)
    run_s: float = 0.0        # from the first task submitted to the last result
    tables: dict[str, Path] = field(default_factory=dict)

    @property
    def x_realtime(self) -> float:
        """Recording seconds per wall second of the whole run (start-up included)."""
        return self.recording_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def x_realtime_running(self) -> float:
        """Recording seconds per wall second once the workers are up."""
        return self.recording_s / self.run_s if self.run_s > 0 else 0.0


def check_model(model_dir: str, backend: str) -> None:
    """The package opens and matches its golden outputs (ModelError otherwise), before any bag."""
    from mmstream.runtime.auto import create_backend
    from mmstream.runtime.package import load_package
    from mmstream.runtime.pipeline import verify_golden

    package = load_package(model_dir)
    be = create_backend(backend, package, intra_op_threads=1)
    try:
        verify_golden(package, be)
    finally:
        be.close()


def rows_for(info: BagInput, estimates: list[Any], detections: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for est, det in zip(estimates, detections):
        row: dict[str, Any] = {"bag": info.path, "bag_id": info.bag_id, "window_start_ns": est.window_start_ns,
                               "window_end_ns": est.window_end_ns,
                               "start_s": round((est.window_start_ns - info.start_ns) / 1e9, 9),
                               "top_label": est.top_label, "top_prob": est.top_prob}
        row.update({f"p_{label}": p for label, p in zip(est.labels, est.probs)})
        row.update({f"present_{m}": bool(v) for m, v in est.presence.items()})
        row.update({f"contrib_{m}": v for m, v in est.contribution.items()})
        if det is not None:
            row.update({f"event_{label}": s for label, s in zip(det.event_labels, det.event_scores)})
        row["backend"] = est.backend
        rows.append(row)
    return rows


def _bag_part(info: BagInput, results: list[TaskResult], status: str = "", reason: str = "") -> dict[str, Any]:
    problems: list[str] = list(info.problems)
    for r in results:
        problems += [p for p in r.problems if p not in problems]
    errors = [r.error for r in results if r.error]
    if not status:
        status = "failed" if errors else ("damaged" if problems else "done")
    return {"bag": info.path, "bag_id": info.bag_id, "status": status, "reason": reason or "; ".join(errors),
            "windows": sum(len(r.estimates) for r in results), "duration_s": round(info.duration_s, 3),
            "ranges": len(results), "wall_s": round(sum(r.wall_s for r in results), 3),
            "cpu_s": round(sum(r.cpu_s for r in results), 3), "problems": problems, "output": "", "rows": []}


def process_bags(inputs: list[str], out_dir: str | Path, cfg: ProcessConfig, *, workers: int = 1, ray: str = "",
                 resume: bool = False, overwrite: bool = False, retries: int = 2, progress: bool = False,
                 report: bool = False) -> RunSummary:
    t0 = time.perf_counter()
    bags = find_bags(inputs)
    model_dir = str(resolve_model(cfg.model))
    check_model(model_dir, cfg.backend)
    key = cfg.results_key(package_hash(cfg.model))
    out = OutputDir(out_dir)
    out.prepare({"format": RUN_FORMAT, "version": RUN_VERSION, "key": key, "model": model_dir,
                 "backend": cfg.backend, "inputs": bags}, resume=resume, overwrite=overwrite)
    summary = RunSummary(out.path)
    bars = _Bars(progress, len(bags))
    infos: list[BagInput] = []
    parts: dict[str, dict[str, Any]] = {}
    pending: list[BagInput] = []
    for bag in bags:
        info = inspect_bag(bag, cfg)
        infos.append(info)
        old = out.part(info.bag_id) if resume else None
        if old is not None and old.get("status") in FINAL:
            parts[info.bag_id] = old
            summary.skipped += 1
            bars.bag_done()
        elif info.error or info.no_topics:
            part = _bag_part(info, [], "failed" if info.error else "no_topics", info.error or info.no_topics)
            out.write_part(info.bag_id, part)
            parts[info.bag_id] = part
            bars.bag_done()
        else:
            pending.append(info)
    if summary.skipped:
        log.info("resume: %d of %d bags already done in %s", summary.skipped, len(bags), out.path)
    tasks = [t for info in pending for t in plan_tasks(info, cfg)]
    bars.windows_total(sum(i.duration_s for i in pending) / (cfg.sync.hop_ns / 1e9))
    by_id = {i.bag_id: i for i in pending}
    expected = {i.bag_id: 0 for i in pending}
    for t in tasks:
        expected[t.bag_id] += 1
    got: dict[str, list[TaskResult]] = {i.bag_id: [] for i in pending}
    if tasks:
        t_start = time.perf_counter()
        executor = make_executor(model_dir, cfg.model, cfg, workers=workers, ray=ray, retries=retries)
        summary.executor = executor.name
        t_run = time.perf_counter()
        summary.startup_s = t_run - t_start
        live = executor.name == "inline"
        try:
            for result in executor.results(tasks, on_windows=bars.windows if live else None):
                if not live:
                    bars.windows(len(result.estimates))
                summary.cpu_s += result.cpu_s
                bag_results = got[result.task.bag_id]
                bag_results.append(result)
                if len(bag_results) == expected[result.task.bag_id]:
                    info = by_id[result.task.bag_id]
                    parts[info.bag_id] = _finish_bag(out, info, bag_results, model_dir, key)
                    summary.recording_s += info.duration_s
                    bars.bag_done()
        finally:
            summary.run_s = time.perf_counter() - t_run
            executor.close()
            bars.close()
    else:
        bars.close()
    ordered = [parts[i.bag_id] for i in infos if i.bag_id in parts]
    summary.tables = out.write_tables(ordered)
    summary.bags = [{k: v for k, v in p.items() if k != "rows"} for p in ordered]
    summary.windows = sum(p["windows"] for p in ordered)
    summary.wall_s = time.perf_counter() - t0
    if report:
        from mmstream.process.report import write_report

        summary.tables.update(write_report(out.path, ordered, summary))
    return summary


def _finish_bag(out: OutputDir, info: BagInput, results: list[TaskResult], model_dir: str, key: str) -> dict[str, Any]:
    results.sort(key=lambda r: r.task.index)
    part = _bag_part(info, results)
    if part["status"] != "failed":
        estimates = [e for r in results for e in r.estimates]
        detections = [d for r in results for d in r.detections]
        starts = [e.window_start_ns for e in estimates]
        assert starts == sorted(set(starts)), f"bag {info.path}: ranges overlap or are out of order"
        meta = {"source_bag": info.path, "bag_id": info.bag_id, "model": model_dir, "results_key": key,
                "backend": results[0].backend if results else ""}
        part["output"] = str(out.write_bag(info.path, info.bag_id, estimates, detections, meta))
        part["rows"] = rows_for(info, estimates, detections)
    out.write_part(info.bag_id, part)
    return part


class _Bars:
    """Two tqdm bars, bags and windows (nothing when progress is off)."""

    def __init__(self, on: bool, bags: int) -> None:
        self._bags = self._win = None
        if on:
            from tqdm import tqdm

            self._bags = tqdm(total=bags, desc="bags", unit="bag", position=0)
            self._win = tqdm(total=0, desc="windows", unit="win", position=1)

    def windows_total(self, n: float) -> None:
        if self._win is not None:
            self._win.total = int(n)
            self._win.refresh()

    def windows(self, n: int) -> None:
        if self._win is not None:
            self._win.update(n)

    def bag_done(self) -> None:
        if self._bags is not None:
            self._bags.update(1)

    def close(self) -> None:
        for bar in (self._win, self._bags):
            if bar is not None:
                bar.close()
        self._bags = self._win = None
