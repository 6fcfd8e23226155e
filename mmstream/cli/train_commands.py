"""``mmstream model train|eval|dataset build|dataset synth|import``: parse arguments, call mmstream.train.

Wired into ``mmstream model`` by :mod:`mmstream.cli.model` calling ``add_train_commands(subparsers)``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable

from mmstream.errors import optional_dependency


def names_missing_extra(purpose: str) -> Callable:
    """A command whose optional imports (torch, matplotlib, ...) name the extra that brings them when missing."""

    def deco(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(func)
        def run(args: argparse.Namespace) -> int:
            with optional_dependency(purpose):
                return func(args)

        return run

    return deco


def add_train_commands(s: argparse._SubParsersAction) -> None:
    tr = s.add_parser("train", help="train a fused model from bags + label files (config YAML)")
    tr.add_argument("--config", required=True, help="training config (see config/train_example.yaml)")
    tr.add_argument("--device", default=None, help="auto (GPU when present), cpu, cuda, cuda:N (default: config)")
    tr.add_argument("--resume", action="store_true", help="continue from <out_dir>/last.pt")
    tr.add_argument("--out", default=None, help="output directory (overrides out_dir)")
    tr.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    tr.add_argument("--seed", type=int, default=None, help="override seed")
    tr.add_argument("--export", default=None, metavar="DIR", help="export the best model to this ONNX package")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    tr.set_defaults(func=_train)

    ev = s.add_parser("eval", help="evaluate a checkpoint, or run the fusion/modality comparison (--compare)")
    ev.add_argument("--checkpoint", default=None, help="checkpoint to evaluate (best.pt)")
    ev.add_argument("--dataset", default=None, help="built dataset directory")
    ev.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    ev.add_argument("--split-file", default=None, help="split.json (default: next to the checkpoint)")
    ev.add_argument("--modalities", default="video,audio,text", help="modalities present at test time")
    ev.add_argument("--config", default=None, help="training config (for --compare)")
    ev.add_argument("--compare", action="store_true",
                    help="train + evaluate every fusion strategy and modality subset; one table + plot in report.md")
    ev.add_argument("--out", default=None, help="report directory")
    ev.add_argument("--device", default=None)
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=_eval)

    ds = s.add_parser("dataset", help="build training datasets from bags, or generate the synthetic benchmark")
    dss = ds.add_subparsers(dest="dataset_command", required=True)
    b = dss.add_parser("build", help="windows from bags + labels through the synchronizer, cached as .npy")
    b.add_argument("--config", required=True, help="training config (its data and model sections are used)")
    b.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=_dataset_build)
    sy = dss.add_parser("synth", help="generate the multimodal benchmark (bags + labels + manifest.json)")
    sy.add_argument("out")
    sy.add_argument("--sessions", type=int, default=16)
    sy.add_argument("--segments", type=int, default=20, help="labeled segments per session")
    sy.add_argument("--segment-s", type=float, default=2.0)
    sy.add_argument("--audio", choices=("tone", "espeak"), default="tone")
    sy.add_argument("--seed", type=int, default=0)
    sy.set_defaults(func=_dataset_synth)

    im = s.add_parser("import", help="import a folder of clips (RAVDESS / CREMA-D names, or CSV) into bags + labels")
    im.add_argument("src", help="folder of video clips with sound")
    im.add_argument("out", help="output folder (sessions/, labels/, manifest.json)")
    im.add_argument("--scheme", choices=("ravdess", "cremad", "csv"), required=True)
    im.add_argument("--labels-csv", default=None, help="CSV with file,label[,speaker,transcript] (scheme csv)")
    im.add_argument("--sample-rate", type=int, default=16000)
    im.add_argument("--max-width", type=int, default=320, help="resize frames to at most this width")
    im.add_argument("--fps", type=float, default=0.0, help="keep about this many frames per second (0: all)")
    im.add_argument("--calm-as", default="neutral", help="RAVDESS 'calm' becomes this label ('' keeps calm)")
    im.add_argument("--no-progress", action="store_true")
    im.set_defaults(func=_import)


def _load(args: argparse.Namespace):
    from mmstream.train.config import load_config

    cfg = load_config(args.config)
    if getattr(args, "out", None):
        cfg.out_dir = args.out
    if getattr(args, "epochs", None) is not None:
        cfg.train.epochs = args.epochs
    if getattr(args, "seed", None) is not None:
        cfg.seed = args.seed
    if getattr(args, "device", None):
        cfg.device = args.device
    return cfg


@names_missing_extra("`mmstream model train`")
def _train(args: argparse.Namespace) -> int:
    from mmstream.train.trainer import train

    cfg = _load(args)
    res = train(cfg, resume=args.resume, progress=not args.no_progress)
    out = {"best_checkpoint": str(res.best_checkpoint), "best_epoch": res.best_epoch,
           "best_val_macro_f1": res.best_val_macro_f1, "epochs_run": res.epochs_run,
           "stopped_early": res.stopped_early, "train_windows_per_s": round(res.windows_per_s, 1)}
    if args.export:
        from mmstream.model.checkpoint import load_checkpoint
        from mmstream.model.export import export_package

        model, vocab, _ = load_checkpoint(res.best_checkpoint)
        spec = export_package(model, vocab, args.export, source=f"mmstream model train --config {args.config}")
        out["package"] = args.export
        out["parity_max_abs_diff"] = spec["parity_max_abs_diff"]
    print(json.dumps(out, indent=1))
    return 0


@names_missing_extra("`mmstream model eval`")
def _eval(args: argparse.Namespace) -> int:
    if args.compare:
        if not args.config:
            print("mmstream model eval --compare needs --config", file=sys.stderr)
            return 2
        from mmstream.train.evaluate import compare

        cfg = _load(argparse.Namespace(config=args.config, device=args.device))
        doc = compare(cfg, args.out, progress=not args.no_progress, device=args.device)
        print(json.dumps({"report": str((args.out or f"{cfg.out_dir}/compare") + "/report.md"),
                          "findings": doc["findings"]}, indent=1, default=str))
        return 0
    if not args.checkpoint or not args.dataset:
        print("mmstream model eval needs --checkpoint and --dataset (or --compare --config)", file=sys.stderr)
        return 2
    from pathlib import Path

    from mmstream.train.evaluate import evaluate_checkpoint

    out = args.out or str(Path(args.checkpoint).parent / f"eval_{args.split}")
    mods = [m.strip() for m in args.modalities.split(",") if m.strip()]
    res = evaluate_checkpoint(args.checkpoint, args.dataset, out, split=args.split, split_file=args.split_file,
                              device=args.device or "auto", modalities=mods)
    emo = res["emotion"]
    print(json.dumps({"report": f"{out}/report.md", "n": emo["n"], "accuracy": emo["accuracy"],
                      "macro_f1": emo["macro_f1"], "ece": emo["calibration"]["ece"]}, indent=1))
    return 0


@names_missing_extra("`mmstream model dataset build`")
def _dataset_build(args: argparse.Namespace) -> int:
    from mmstream.train.trainer import prepare_dataset

    cfg = _load(args)
    if args.force:
        import shutil
        from pathlib import Path

        shutil.rmtree(Path(cfg.data.dataset_dir or Path(cfg.out_dir) / "dataset"), ignore_errors=True)
    ds = prepare_dataset(cfg, progress=not args.no_progress)
    print(json.dumps({"dataset": str(ds.path), "windows": len(ds), "labels": ds.emotion_labels,
                      "events": ds.event_labels, "stats": ds.meta.get("stats")}, indent=1))
    return 0


@names_missing_extra("`mmstream model dataset synth`")
def _dataset_synth(args: argparse.Namespace) -> int:
    from mmstream.train.synthetic import SynthConfig, generate

    cfg = SynthConfig(sessions=args.sessions, segments_per_session=args.segments, segment_s=args.segment_s,
                      audio=args.audio, seed=args.seed)
    m = generate(args.out, cfg, progress=True)
    print(json.dumps({"manifest": f"{args.out}/manifest.json", "sessions": len(m["recordings"]),
                      "emotion_labels": m["emotion_labels"], "event_labels": m["event_labels"]}, indent=1))
    return 0


@names_missing_extra("`mmstream model import`")
def _import(args: argparse.Namespace) -> int:
    from mmstream.train.importer import import_clips

    m = import_clips(args.src, args.out, args.scheme, labels_csv=args.labels_csv, sample_rate_hz=args.sample_rate,
                     max_width=args.max_width, fps=args.fps, calm_as=args.calm_as, progress=not args.no_progress)
    print(json.dumps({"manifest": f"{args.out}/manifest.json", "clips": len(m["recordings"]),
                      "labels": m["emotion_labels"]}, indent=1))
    return 0
