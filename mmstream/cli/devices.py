"""``mmstream devices``: the cameras and audio devices this host has (to pick a sensor source)."""

from __future__ import annotations

import argparse
import json

from mmstream.sensors.devices import devices_report, format_devices_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list cameras (/dev/video*) and PortAudio audio devices")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_devices)


def _devices(args: argparse.Namespace) -> int:
    report = devices_report()
    print(json.dumps(report, indent=2) if args.json else format_devices_report(report))
    return 0
