"""``mmstream process BAG_OR_DIR... -o OUT``: the perception over recorded bags. Parses arguments, calls
:func:`mmstream.process.process_bags` (docs/process.md)."""

from __future__ import annotations

import argparse
import json

import yaml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("process", help="run the perception over many bags (in-process, a process pool or Ray)",
                       description="Every bag through the graph's synchronizer and model, without sockets: per bag "
                                   "an MCAP of estimates and detections, one table for the run (docs/process.md).")
    p.add_argument("inputs", nargs="+", metavar="BAG_OR_DIR", help=".mcap, rosbag2 directory, or a directory of bags")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--model", default="default", help="model package directory, or 'default' (pretrained)")
    p.add_argument("--backend", default="onnxruntime", help="auto, onnxruntime, tensorrt, torch")
    p.add_argument("-m", "--map", action="append", default=[], metavar="BAG_TOPIC=MODALITY",
                   help="map a bag topic to camera, microphone, text or a topic (as `bag play -m`); repeatable")
    p.add_argument("--window", type=float, default=1.0, metavar="S", help="window length, seconds")
    p.add_argument("--hop", type=float, default=0.5, metavar="S", help="time between window starts, seconds")
    p.add_argument("--sync", action="append", default=[], metavar="NAME=VALUE",
                   help="any other synchronizer parameter (SyncConfig field, *_s in seconds); repeatable")
    p.add_argument("--workers", type=int, default=1, help="worker processes (1: in this process)")
    p.add_argument("--ray", default="", metavar="auto|local|ADDRESS",
                   help="run on Ray: 'local' starts one here (--workers CPUs), 'auto' or ADDRESS joins a cluster")
    p.add_argument("--split", type=float, default=600.0, metavar="S",
                   help="bags longer than this are split into ranges of this length (0: never)")
    p.add_argument("--warmup", type=float, default=30.0, metavar="S", help="replayed before each range, not emitted")
    p.add_argument("--retries", type=int, default=2, help="retries of a task whose worker fails")
    p.add_argument("--resume", action="store_true", help="skip bags done in OUT by an earlier run (content hash)")
    p.add_argument("--overwrite", action="store_true", help="replace the results in OUT")
    p.add_argument("--report", action="store_true", help="also write report.txt and report_timeline.png")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the bags table as JSON")
    p.set_defaults(func=_process)


def _process(args: argparse.Namespace) -> int:
    from mmstream.bag.reader import parse_topic_map
    from mmstream.process import ProcessConfig, process_bags, sync_config
    from mmstream.sync.config import s_to_ns

    overrides: dict[str, object] = {"window_s": args.window, "hop_s": args.hop}
    for item in args.sync:
        name, _, value = item.partition("=")
        overrides[name.strip()] = yaml.safe_load(value)  # numbers, true/false, [lists] as YAML reads them
    cfg = ProcessConfig(model=args.model, backend=args.backend, sync=sync_config(overrides),
                        topic_map=tuple(parse_topic_map(args.map).items()), split_ns=s_to_ns(args.split),
                        warmup_ns=s_to_ns(args.warmup))
    s = process_bags(args.inputs, args.output, cfg, workers=args.workers, ray=args.ray, resume=args.resume,
                     overwrite=args.overwrite, retries=args.retries, progress=not args.no_progress,
                     report=args.report)
    if args.json:
        print(json.dumps(s.bags, indent=1))
    bad = [b for b in s.bags if b["status"] not in ("done",)]
    print(f"{len(s.bags)} bags, {s.windows} windows, {s.skipped} done before; {s.recording_s:.1f} s of recordings "
          f"in {s.wall_s:.1f} s ({s.x_realtime:.1f}x real time); tables: "
          f"{', '.join(str(p) for p in s.tables.values())}")
    for b in bad:
        print(f"  {b['status']}: {b['bag']}: {b['reason'] or '; '.join(b['problems'])}")
    return 1 if any(b["status"] == "failed" for b in s.bags) else 0
