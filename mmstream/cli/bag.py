"""``mmstream bag record|play|info|control``: ROS 2 MCAP bags. Parses arguments, calls the library."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bag", help="record, play and inspect ROS 2 MCAP bags")
    bag = p.add_subparsers(dest="bag_command", metavar="SUBCOMMAND", required=True)

    r = bag.add_parser("record", help="record topics of the running graph into a bag")
    r.add_argument("topics", nargs="*", help="topics to record (default: all)")
    r.add_argument("-o", "--output", default="", help="bag file (.mcap); default recording_<date>.mcap")
    r.add_argument("-x", "--exclude", action="append", default=[], help="topic not to record; repeatable")
    r.add_argument("--compression", default="zstd", choices=("zstd", "lz4", "none"))
    r.add_argument("--chunk-mb", type=float, default=4.0)
    r.add_argument("--split-mb", type=float, default=0.0, help="new file after this many MB")
    r.add_argument("--split-s", type=float, default=0.0, help="new file after this many seconds")
    r.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")
    r.add_argument("--queue-size", type=int, default=512)
    r.add_argument("--launch", default="", help="launch file to store in the bag's metadata")
    r.add_argument("--params-text", default="", help="parameters (YAML) to store in the bag's metadata")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_record)

    pl = bag.add_parser("play", help="replay a bag into the graph (with the simulated clock)")
    pl.add_argument("bag", help=".mcap file, split series, or rosbag2 directory")
    pl.add_argument("-r", "--rate", type=float, default=1.0)
    pl.add_argument("--start", type=float, default=0.0, help="start offset, seconds")
    pl.add_argument("--duration", type=float, default=0.0, help="seconds to play (0: all)")
    pl.add_argument("-l", "--loop", action="store_true")
    pl.add_argument("--topics", nargs="+", default=[], help="play only these topics")
    pl.add_argument("-m", "--map", action="append", default=[], metavar="BAG_TOPIC=MODALITY",
                    help="map a bag topic to camera, microphone, text or a topic; repeatable")
    pl.add_argument("--fast", action="store_true", help="as fast as possible, with backpressure")
    pl.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    pl.add_argument("--clock-hz", type=float, default=100.0, help="/clock ticks per bag second between messages")
    pl.add_argument("--wait-for", type=int, default=0, metavar="N", help="wait for N subscribers per topic")
    pl.add_argument("--keep-running", action="store_true", help="do not exit at the end of the bag")
    pl.add_argument("--control", default="", help="control socket endpoint")
    pl.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="any other player parameter (see `python -m nodes.player --list-params`); repeatable")
    pl.set_defaults(func=_play)

    i = bag.add_parser("info", help="duration, topics, types, counts, rates, size")
    i.add_argument("bag")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--fast", action="store_true", help="use the summary only (no per-topic rates)")
    i.set_defaults(func=_info)

    c = bag.add_parser("control", help="send pause|resume|toggle|step [N]|rate X|stop|status to a player")
    c.add_argument("command", nargs="+")
    c.add_argument("--endpoint", default="", help="default: <run dir>/player.ctl")
    c.set_defaults(func=_control)


def _p(name: str, value: object) -> list[str]:
    return ["--param", f"{name}={json.dumps(value)}"]


def _record(args: argparse.Namespace) -> int:
    from nodes import recorder

    argv = _p("output", args.output) + _p("topics", args.topics) + _p("exclude", args.exclude)
    argv += _p("compression", args.compression) + _p("chunk_mb", args.chunk_mb) + _p("split_mb", args.split_mb)
    argv += _p("split_s", args.split_s) + _p("duration_s", args.duration) + _p("queue_size", args.queue_size)
    argv += _p("launch_file", args.launch) + _p("graph_params", args.params_text)
    argv += _p("progress_s", 0.0 if args.no_progress else 1.0)
    return recorder.main(argv)


def _play(args: argparse.Namespace) -> int:
    from mmstream.bag.reader import parse_topic_map
    from nodes import player

    argv = _p("bag", args.bag) + _p("rate", args.rate) + _p("start_s", args.start) + _p("duration_s", args.duration)
    argv += _p("loop", args.loop) + _p("topics", args.topics) + _p("topic_map", parse_topic_map(args.map))
    argv += _p("fast", args.fast) + _p("clock", not args.no_clock) + _p("clock_hz", args.clock_hz)
    argv += _p("wait_for_subscribers", args.wait_for) + _p("exit_on_end", not args.keep_running)
    argv += _p("control_endpoint", args.control)
    for item in args.param:
        argv += ["--param", item]
    return player.main(argv)


def _info(args: argparse.Namespace) -> int:
    from mmstream.bag.info import bag_info, format_info, info_json

    info = bag_info(args.bag, exact_rates=not args.fast)
    print(info_json(info) if args.json else format_info(info))
    return 0


def _control(args: argparse.Namespace) -> int:
    from mmstream import graph
    from mmstream.bag.play import send_control

    endpoint = args.endpoint or f"ipc://{graph.default_run_dir()}/player.ctl"
    print(json.dumps(send_control(endpoint, " ".join(args.command))))
    return 0
