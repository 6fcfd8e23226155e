"""``--report``: the run in words (windows per label and per bag, time spent, throughput) and a plot
(the top label of every window along each bag's timeline), next to the tables."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def summary_text(parts: list[dict[str, Any]], summary: Any) -> str:
    labels = Counter(r["top_label"] for p in parts for r in p.get("rows", []))
    total = sum(labels.values())
    lines = [f"mmstream process: {len(parts)} bags, {total} windows ({summary.skipped} bags done in an earlier run)",
             f"time: {summary.wall_s:.1f} s wall, {summary.cpu_s:.1f} s CPU in workers ({summary.executor or 'none'}); "
             f"{summary.recording_s:.1f} s of recordings processed in this run = {summary.x_realtime:.1f}x real time",
             "", "windows per label:"]
    lines += [f"  {label:<12} {n:6d}  {100 * n / total:5.1f} %" for label, n in labels.most_common()] or ["  (none)"]
    lines += ["", "per bag:"]
    for p in parts:
        top = Counter(r["top_label"] for r in p.get("rows", [])).most_common(1)
        main = f"mostly {top[0][0]}" if top else ""
        lines.append(f"  {p['status']:<9} {p['windows']:5d} windows  {p['duration_s']:8.1f} s  {p['wall_s']:6.1f} s  "
                     f"{p['bag']}  {main}")
        for why in ([p["reason"]] if p.get("reason") else []) + list(p.get("problems") or []):
            lines.append(f"            {why}")
    return "\n".join(lines) + "\n"


def plot_timelines(parts: list[dict[str, Any]], path: Path) -> Path | None:
    from mmstream.train.metrics import _plt, save_figure

    with_rows = [p for p in parts if p.get("rows")]
    if not with_rows:
        return None
    plt = _plt()
    labels = sorted({r["top_label"] for p in with_rows for r in p["rows"]})
    colors = {lab: plt.get_cmap("tab10")(i % 10) for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(len(with_rows), 1, figsize=(10, 0.9 + 0.6 * len(with_rows)), squeeze=False)
    for ax, p in zip(axes[:, 0], with_rows):
        for r in p["rows"]:
            width = (r["window_end_ns"] - r["window_start_ns"]) / 1e9
            ax.barh(0, width, left=r["start_s"], color=colors[r["top_label"]], alpha=0.35 + 0.65 * r["top_prob"],
                    height=0.8, linewidth=0)
        ax.set_yticks([0], [Path(p["bag"]).name[:28]])
        ax.set_xlim(left=0)
    axes[-1, 0].set_xlabel("seconds from the bag's start (opacity: top probability)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[lab]) for lab in labels]
    fig.legend(handles, labels, loc="upper center", ncol=min(7, len(labels)), fontsize=8)
    fig.subplots_adjust(top=0.8)
    return save_figure(fig, path)


def write_report(out_dir: Path, parts: list[dict[str, Any]], summary: Any) -> dict[str, Path]:
    text = out_dir / "report.txt"
    text.write_text(summary_text(parts, summary))
    written = {"report.txt": text}
    png = plot_timelines(parts, out_dir / "report_timeline.png")
    if png is not None:
        written["report_timeline.png"] = png
    return written
