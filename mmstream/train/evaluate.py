"""Evaluation: metrics and a readable report for one model, and the single / pair / all-three
modality comparison across fusion strategies.

``evaluate_checkpoint`` -> ``<out>/report.md`` + confusion.png/.txt, roc.png, reliability.png, metrics.json.

``compare(cfg)`` trains, on the same dataset and split:
  * one model per fusion strategy on all three modalities (with the config's modality dropout),
    each evaluated on the test split with every modality subset present at test time (7 columns:
    the pair columns are "one modality removed at test time");
  * one model per single modality and per pair (baseline fusion), evaluated on what it was trained on;
  * the baseline-fusion model on all three without modality dropout (the ablation);
and writes ``<out>/report.md`` with one table (accuracy / macro-F1 per model × test-time modalities),
one plot (comparison.png), the headline findings, and the detailed report of the best model.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mmstream.model.checkpoint import load_checkpoint
from mmstream.train import metrics as M
from mmstream.train.config import MODALITIES, TrainConfig
from mmstream.train.dataset import WindowDataset

log = logging.getLogger("mmstream.train.evaluate")

SHORT = {"video": "V", "audio": "A", "text": "T"}
SUBSETS: list[tuple[str, ...]] = [c for r in (1, 2, 3) for c in itertools.combinations(MODALITIES, r)]


def subset_name(mods: Sequence[str]) -> str:
    return "+".join(SHORT[m] for m in MODALITIES if m in mods)


def evaluate_model(model, vocab, ds: WindowDataset, idx: np.ndarray, *, device: str | torch.device = "cpu",
                   modalities: Sequence[str] = MODALITIES) -> dict[str, Any]:
    """Classification (and detection, if the model has that head) metrics on windows ``idx``."""
    from mmstream.train.trainer import pick_device, predict

    dev = pick_device(device) if isinstance(device, str) else device
    model.to(dev)
    pred = predict(model, vocab, ds, idx, dev, tuple(modalities))
    out: dict[str, Any] = {"modalities": list(modalities),
                           "emotion": M.classification_report(pred["labels"], pred["probs"], model.cfg.emotion_labels)}
    if pred["event_probs"].shape[1] and ds.event_labels:
        out["detection"] = M.detection_report(pred["events"], pred["event_probs"], ds.event_labels)
    present = pred["contribution"].sum(1) > 0
    out["mean_contribution"] = {m: float(pred["contribution"][present, i].mean()) if present.any() else 0.0
                                for i, m in enumerate(MODALITIES)}
    return out


def write_model_report(result: dict[str, Any], out_dir: str | Path, title: str = "evaluation",
                       notes: Sequence[str] = ()) -> Path:
    """report.md + PNGs + metrics.json for one evaluated model; returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    emo = result["emotion"]
    labels = emo["labels"]
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    cm_text = M.confusion_text(emo["confusion"], labels)
    (out / "confusion.txt").write_text(cm_text + "\n")
    M.plot_confusion(emo["confusion"], labels, out / "confusion.png", f"{title}: confusion")
    M.plot_reliability(emo["calibration"], out / "reliability.png")
    lines = [f"# {title}", "", *notes, "" if notes else "",
             f"Windows: {emo['n']} · modalities seen: {', '.join(result['modalities'])}", "",
             "| metric | value |", "|---|---|",
             f"| accuracy | {emo['accuracy']:.4f} |", f"| macro-F1 | {emo['macro_f1']:.4f} |",
             f"| ECE (10 bins) | {emo['calibration']['ece']:.4f} |", "",
             "## Per class", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab in labels:
        pc = emo["per_class"][lab]
        lines.append(f"| {lab} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} |")
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "", "```", cm_text, "```", "",
              "![confusion](confusion.png)", "", "## Calibration", "",
              "Expected calibration error of the top-class probability: "
              f"**{emo['calibration']['ece']:.4f}**.", "", "![reliability](reliability.png)", ""]
    det = result.get("detection")
    if det:
        M.plot_roc(det, out / "roc.png")
        lines += ["## Detection head", "", "| event | AUC | accuracy@0.5 | ECE | positives / n |",
                  "|---|---|---|---|---|"]
        for lab, ev in det["events"].items():
            auc = "n/a (one class)" if ev["auc"] is None else f"{ev['auc']:.4f}"
            lines.append(f"| {lab} | {auc} | {ev['accuracy']:.3f} | {ev['ece']:.3f} | {ev['positives']} / {ev['n']} |")
        lines += ["", "![roc](roc.png)", ""]
    contrib = result.get("mean_contribution")
    if contrib:
        lines += ["## Mean modality contribution (fusion weights)", "",
                  " · ".join(f"{m}: {v:.3f}" for m, v in contrib.items()), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def evaluate_checkpoint(checkpoint: str | Path, dataset: str | Path | WindowDataset, out_dir: str | Path, *,
                        split: str = "test", split_file: str | Path | None = None, device: str = "auto",
                        modalities: Sequence[str] = MODALITIES) -> dict[str, Any]:
    """Evaluate a checkpoint on a split of a dataset (the split saved next to the checkpoint by
    default, or every window with ``split="all"``); writes the report; returns the metrics."""
    from mmstream.train.trainer import TrainError

    ckpt_path = Path(checkpoint)
    model, vocab, ckpt = load_checkpoint(ckpt_path)
    ds = dataset if isinstance(dataset, WindowDataset) else WindowDataset(dataset)
    if model.cfg.preprocessing_params() != ds.preprocessing:
        raise TrainError(f"checkpoint {ckpt_path} expects preprocessing {model.cfg.preprocessing_params()}, "
                         f"dataset {ds.path} was built with {ds.preprocessing}")
    if list(model.cfg.emotion_labels) != ds.emotion_labels:
        raise TrainError(f"checkpoint {ckpt_path} labels {list(model.cfg.emotion_labels)} differ from dataset "
                         f"{ds.path} labels {ds.emotion_labels}")
    if split == "all":
        idx = np.arange(len(ds))
    else:
        sf = Path(split_file) if split_file else ckpt_path.parent / "split.json"
        if not sf.exists():
            raise TrainError(f"split file {sf} does not exist (give --split all or --split-file)")
        idx = np.asarray(json.loads(sf.read_text())[split], np.int64)
    result = evaluate_model(model, vocab, ds, idx, device=device, modalities=modalities)
    result["checkpoint"] = str(ckpt_path)
    result["split"] = split
    write_model_report(result, out_dir, f"Evaluation of {ckpt_path.name} on {split} ({len(idx)} windows)")
    return result


# --------------------------------------------------------------------------- the comparison
def _variant(base: TrainConfig, out: Path, name: str, *, fusion: str, modalities: Sequence[str],
             dropout: float | None = None) -> TrainConfig:
    cfg = base.copy()
    cfg.out_dir = str(out / "runs" / name)
    cfg.model.overrides = {**cfg.model.overrides, "fusion": fusion}
    cfg.model.modalities = list(modalities)
    if dropout is not None:
        cfg.train.modality_dropout = dropout
    return cfg


def compare(cfg: TrainConfig, out_dir: str | Path | None = None, *, progress: bool = True,
            device: str | None = None, export: bool = True) -> dict[str, Any]:
    """Train and evaluate the comparison grid (see module doc); write report.md; return the results."""
    from mmstream.train.trainer import make_splits, prepare_dataset, train

    out = Path(out_dir or Path(cfg.out_dir) / "compare")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = prepare_dataset(cfg, progress=progress)
    splits = make_splits(ds, cfg)
    test_idx = splits["test"] if len(splits["test"]) else splits["val"]
    ev = cfg.eval
    jobs: list[tuple[str, str, TrainConfig, list[tuple[str, ...]]]] = []
    for fusion in ev.fusions:
        jobs.append((f"{fusion} (V+A+T, dropout {cfg.train.modality_dropout:g})", f"all_{fusion}",
                     _variant(cfg, out, f"all_{fusion}", fusion=fusion, modalities=MODALITIES), SUBSETS))
    if ev.trained_subsets:
        for sub in SUBSETS[:-1]:
            n = subset_name(sub)
            jobs.append((f"{ev.baseline_fusion}, trained on {n} only", f"only_{n.replace('+', '')}",
                         _variant(cfg, out, f"only_{n.replace('+', '')}", fusion=ev.baseline_fusion, modalities=sub),
                         [sub]))
    if ev.dropout_ablation:
        jobs.append((f"{ev.baseline_fusion} (V+A+T, no modality dropout)", "all_nodropout",
                     _variant(cfg, out, "all_nodropout", fusion=ev.baseline_fusion, modalities=MODALITIES,
                              dropout=0.0), SUBSETS))
    rows = []
    for k, (title, key, vcfg, subsets) in enumerate(jobs):
        log.info("comparison %d/%d: %s", k + 1, len(jobs), title)
        res = train(vcfg, dataset=ds, progress=progress, device=device)
        model, vocab, _ = load_checkpoint(res.best_checkpoint)
        cells = {}
        for sub in subsets:
            r = evaluate_model(model, vocab, ds, test_idx, device=device or cfg.device, modalities=sub)
            cells[subset_name(sub)] = {"accuracy": r["emotion"]["accuracy"], "macro_f1": r["emotion"]["macro_f1"],
                                       "ece": r["emotion"]["calibration"]["ece"], "result": r}
        rows.append({"title": title, "key": key, "checkpoint": str(res.best_checkpoint),
                     "fusion": vcfg.model.overrides["fusion"], "trained_on": subset_name(vcfg.model.modalities),
                     "modality_dropout": vcfg.train.modality_dropout, "best_epoch": res.best_epoch,
                     "epochs_run": res.epochs_run, "val_macro_f1": res.best_val_macro_f1,
                     "train_windows_per_s": res.windows_per_s, "cells": cells})
    summary = _findings(rows)
    export_info = None
    best_full = max((r for r in rows if r["key"].startswith("all_") and r["key"] != "all_nodropout"),
                    key=lambda r: r["cells"]["V+A+T"]["macro_f1"], default=None)
    if export and best_full is not None:
        export_info = _export(best_full, out / "model", ds, test_idx)
    doc = {"dataset": str(ds.path), "n_windows": len(ds), "split_by": cfg.data.split_by,
           "split_sizes": {k: int(len(v)) for k, v in splits.items()}, "test_windows": int(len(test_idx)),
           "labels": ds.emotion_labels, "dataset_stats": ds.meta.get("stats", {}), "sync": ds.meta.get("sync"),
           "rows": [{**r, "cells": {k: {kk: vv for kk, vv in c.items() if kk != "result"}
                                    for k, c in r["cells"].items()}} for r in rows],
           "findings": summary, "export": export_info, "elapsed_s": time.perf_counter() - t0}
    (out / "comparison.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    _plot_comparison(rows, out / "comparison.png")
    if best_full is not None:
        write_model_report(best_full["cells"]["V+A+T"]["result"], out / "best",
                           f"Best fused model: {best_full['title']}")
    _write_compare_report(out / "report.md", doc, rows, best_full)
    return doc


def _findings(rows: list[dict[str, Any]]) -> dict[str, Any]:
    full = [r for r in rows if r["key"].startswith("all_") and r["key"] != "all_nodropout"]
    singles = [r for r in rows if r["key"].startswith("only_") and len(r["trained_on"]) == 1]
    f: dict[str, Any] = {}
    if full:
        best = max(full, key=lambda r: r["cells"]["V+A+T"]["macro_f1"])
        f["best_fused"] = {"title": best["title"], **{k: best["cells"]["V+A+T"][k] for k in ("accuracy", "macro_f1")}}
        single_cells = [(f"{r['title']} with only {n} present", r["cells"][n]) for r in full for n in ("V", "A", "T")]
        if singles:
            single_cells += [(r["title"], r["cells"][r["trained_on"]]) for r in singles]
        bt, bc = max(single_cells, key=lambda x: x[1]["macro_f1"])
        f["best_single"] = {"title": bt, "accuracy": bc["accuracy"], "macro_f1": bc["macro_f1"]}
        f["fusion_beats_best_single"] = f["best_fused"]["macro_f1"] > bc["macro_f1"]
        f["fusion_gain_macro_f1"] = f["best_fused"]["macro_f1"] - bc["macro_f1"]
    drop = [r for r in rows if r["key"] == "all_nodropout"]
    with_drop = [r for r in full if r["fusion"] == (drop[0]["fusion"] if drop else None)]
    if drop and with_drop:
        def removed(r: dict[str, Any]) -> float:
            return float(np.mean([r["cells"][n]["accuracy"] for n in ("A+T", "V+T", "V+A")]))

        f["one_removed_mean_accuracy"] = {"with_dropout": removed(with_drop[0]), "without_dropout": removed(drop[0])}
        f["all_present_accuracy"] = {"with_dropout": with_drop[0]["cells"]["V+A+T"]["accuracy"],
                                     "without_dropout": drop[0]["cells"]["V+A+T"]["accuracy"]}
        f["dropout_keeps_accuracy"] = removed(with_drop[0]) >= removed(drop[0])
    return f


def _export(row: dict[str, Any], out: Path, ds: WindowDataset, test_idx: np.ndarray) -> dict[str, Any]:
    """Export the best model as an ONNX package (parity-checked) and check it on real test windows."""
    from mmstream.model.export import export_package

    model, vocab, _ = load_checkpoint(row["checkpoint"])
    try:
        spec = export_package(model, vocab, out, fp16=False, source=f"mmstream model train: {row['title']}")
    except Exception as exc:  # noqa: BLE001 - reported, not fatal for the comparison
        log.warning("export of %s failed: %s", row["checkpoint"], exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    info: dict[str, Any] = {"package": str(out), "parity_max_abs_diff": spec.get("parity_max_abs_diff")}
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        idx = np.sort(test_idx)[:64]
        feed = ds.feed(idx, vocab, model.cfg.text.max_tokens)
        inputs = {i.name: feed[i.name] for i in sess.get_inputs()}
        onnx_probs = sess.run(["emotion_probs"], inputs)[0]
        with torch.no_grad():
            torch_probs = torch.softmax(model({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
                                        ["emotion_logits"], -1).numpy()
        info["test_windows_max_abs_diff"] = float(np.abs(onnx_probs - torch_probs).max())
        info["test_windows_onnx_accuracy"] = float((onnx_probs.argmax(1) == feed["labels"]).mean())
        info["test_windows_checked"] = int(len(idx))
    except Exception as exc:  # noqa: BLE001
        info["onnx_check_error"] = f"{type(exc).__name__}: {exc}"
    try:
        info["live_path"] = live_path_check(out, ds, test_idx, model, vocab)
    except Exception as exc:  # noqa: BLE001
        info["live_path"] = {"error": f"{type(exc).__name__}: {exc}"}
    return info


def live_path_check(package: Path, ds: WindowDataset, test_idx: np.ndarray, model, vocab,
                    max_windows: int = 64) -> dict[str, Any]:
    """Run the exported package the way the inference node does (InferencePipeline: Window ->
    fused_v1 preprocessing -> ONNX Runtime) on windows re-cut from a test bag by the synchronizer,
    and compare with the training path (cached features -> torch) on the same windows."""
    from mmstream.runtime.pipeline import InferencePipeline
    from mmstream.train.dataset import bag_windows, sync_config

    test_sessions = {ds.sessions[i] for i in test_idx}
    rec = next(r for r in ds.meta["recordings"] if r["session"] in test_sessions)
    by_start = {int(ds.arrays["stamps"][i][0]): int(i) for i in test_idx if ds.sessions[i] == rec["session"]}
    windows = [w for w in bag_windows(rec["bag"], sync_config(ds.meta["sync"])) if w.start_ns in by_start]
    windows = windows[:max_windows]
    pipe = InferencePipeline.open(str(package), "onnxruntime", verify=True)
    try:
        live = np.asarray([e.probs for e in pipe.run(windows).estimates], np.float64)
        backend = pipe.backend_name
    finally:
        pipe.close()
    idx = np.asarray([by_start[w.start_ns] for w in windows])
    feed = ds.feed(idx, vocab, model.cfg.text.max_tokens)
    order = np.argsort(np.argsort(idx))  # feed() sorts; map back to the windows' order
    with torch.no_grad():
        train_probs = torch.softmax(model({k: torch.from_numpy(np.ascontiguousarray(feed[k])) for k in
                                           ("frames", "frame_mask", "logmel", "audio_mask", "tokens", "presence")})
                                    ["emotion_logits"], -1).numpy()[order]
    labels = feed["labels"][order]
    return {"session": rec["session"], "windows": len(windows), "backend": backend,
            "max_abs_diff_vs_training_path": float(np.abs(live - train_probs).max()) if len(windows) else None,
            "same_top_label": float((live.argmax(1) == train_probs.argmax(1)).mean()) if len(windows) else None,
            "accuracy": float((live.argmax(1) == labels).mean()) if len(windows) else None}


def _plot_comparison(rows: list[dict[str, Any]], path: Path) -> None:
    plt = M._plt()
    cols = [subset_name(s) for s in SUBSETS]
    fig, ax = plt.subplots(figsize=(12, 5.0))
    colors = plt.get_cmap("tab20").colors
    for j, c in enumerate(cols):  # per column, only the models evaluated there, side by side
        here = [i for i, r in enumerate(rows) if c in r["cells"]]
        width = 0.84 / max(1, len(here))
        for pos, i in enumerate(here):
            ax.bar(j + (pos - (len(here) - 1) / 2) * width, rows[i]["cells"][c]["accuracy"], width=width,
                   color=colors[i % len(colors)], label=rows[i]["title"] if j == min(
                       jj for jj, cc in enumerate(cols) if cc in rows[i]["cells"]) else None)
    ax.set_xticks(range(len(cols)), [f"{c}" for c in cols])
    ax.set_xlabel("modalities present at test time (V video, A audio, T text)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.set_title("single vs pairs vs all three modalities, per fusion strategy")
    M.save_figure(fig, path)


def _write_compare_report(path: Path, doc: dict[str, Any], rows: list[dict[str, Any]],
                          best_full: dict[str, Any] | None) -> None:
    cols = [subset_name(s) for s in SUBSETS]
    f = doc["findings"]
    st = doc.get("dataset_stats", {})
    sync = doc.get("sync") or {}
    lines = ["# Single vs multi vs cross-modal: fusion comparison", "",
             f"Dataset `{doc['dataset']}`: {doc['n_windows']} labeled windows built from bags through the "
             f"synchronizer (window {sync.get('window_ns', 0) / 1e9:g} s, hop {sync.get('hop_ns', 0) / 1e9:g} s, "
             f"{sync.get('frames_per_window')} frames per window; {st.get('recording_s', 0):.0f} s of recording, "
             f"built in {st.get('build_s', 0):.1f} s). Split by {doc['split_by']}: {doc['split_sizes']}; "
             f"test windows: {doc['test_windows']}. Labels: {', '.join(doc['labels'])}.", "",
             "## Findings", ""]
    if "best_fused" in f:
        lines.append(f"- Best fused model ({f['best_fused']['title']}, all three present): accuracy "
                     f"**{f['best_fused']['accuracy']:.3f}**, macro-F1 **{f['best_fused']['macro_f1']:.3f}**.")
        lines.append(f"- Best single modality ({f['best_single']['title']}): "
                     f"accuracy {f['best_single']['accuracy']:.3f}, "
                     f"macro-F1 {f['best_single']['macro_f1']:.3f}. Fusion "
                     f"{'beats' if f['fusion_beats_best_single'] else 'does NOT beat'} it by "
                     f"{f['fusion_gain_macro_f1']:+.3f} macro-F1.")
    if "one_removed_mean_accuracy" in f:
        o, a = f["one_removed_mean_accuracy"], f["all_present_accuracy"]
        lines.append(f"- One modality removed at test time (mean over the three): accuracy {o['with_dropout']:.3f} "
                     f"with modality dropout vs {o['without_dropout']:.3f} without (all present: "
                     f"{a['with_dropout']:.3f} vs {a['without_dropout']:.3f}). Modality dropout "
                     f"{'keeps' if f['dropout_keeps_accuracy'] else 'does NOT keep'} accuracy better.")
    ex = doc.get("export")
    if ex:
        if "error" in ex:
            lines.append(f"- ONNX export failed: {ex['error']}")
        else:
            lines.append(f"- Best fused model exported to `{ex['package']}`; parity (ONNX Runtime vs torch) max abs "
                         f"diff {json.dumps(ex.get('parity_max_abs_diff'))}; on {ex.get('test_windows_checked')} real "
                         f"test windows max abs diff {ex.get('test_windows_max_abs_diff', float('nan')):.2e}, "
                         f"ONNX accuracy {ex.get('test_windows_onnx_accuracy', float('nan')):.3f}.")
            lp = ex.get("live_path") or {}
            if "error" in lp:
                lines.append(f"- Live inference path check failed: {lp['error']}")
            elif lp:
                lines.append(f"- The package runs in the inference node's pipeline ({lp['backend']}): "
                             f"{lp['windows']} windows re-cut from test bag {lp['session']} by the synchronizer give "
                             f"the same top label as the training path on {lp['same_top_label']:.1%} of them (max "
                             f"prob diff {lp['max_abs_diff_vs_training_path']:.2e}); accuracy {lp['accuracy']:.3f}.")
    lines += ["", "## Test accuracy / macro-F1 by modalities present at test time", "",
              "Columns: modalities present at test time (V video, A audio, T text); the pair columns of the "
              "V+A+T models are the same models with one modality removed. \"—\": not evaluated (the model "
              "never saw those modalities).", "",
              "| model | " + " | ".join(cols) + " | val macro-F1 | epochs |",
              "|---|" + "---|" * (len(cols) + 2)]
    for r in rows:
        cells = [f"{r['cells'][c]['accuracy']:.3f} / {r['cells'][c]['macro_f1']:.3f}" if c in r["cells"] else "—"
                 for c in cols]
        lines.append(f"| {r['title']} | " + " | ".join(cells) + f" | {r['val_macro_f1']:.3f} | {r['epochs_run']} |")
    lines += ["", "![comparison](comparison.png)", ""]
    if best_full is not None:
        lines += ["Details of the best fused model (confusion matrix, per-class precision/recall, calibration, "
                  "detection ROC/AUC): [best/report.md](best/report.md)", ""]
    lines += [f"Total time: {doc['elapsed_s']:.0f} s.", ""]
    path.write_text("\n".join(lines))
