"""``mmstream perceive FILE... [--text SENTENCE] [--annotate OUT]``: JSON lines of what the default model sees."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perceive", help="run the default model on images, videos, audio files or text (JSON lines)",
                       description="One JSON object per input file (per frame for a video): faces, speech, "
                                   "text_emotion, estimate. A bad file is reported and skipped (exit code 1).")
    p.add_argument("files", nargs="*", help="images, videos, audio files (wav/flac/ogg/mp3) or .txt files")
    p.add_argument("--text", action="append", default=[], metavar="SENTENCE", help="a sentence to perceive (repeatable)")
    p.add_argument("--annotate", metavar="OUT", help="write annotated images / videos into this directory")
    p.add_argument("--model", help="model package directory (default: the pretrained default model)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mmstream.perceive import PerceiveError, Perceiver
    from mmstream.perceive.annotate import Annotator

    if not args.files and not args.text:
        print("mmstream perceive: nothing to perceive: give files or --text SENTENCE", file=sys.stderr)
        return 2
    perceiver = Perceiver(args.model)
    annotator = Annotator(args.annotate) if args.annotate else None
    failed = 0

    def emit(record: dict) -> None:
        if annotator is not None:
            annotator.add(record)
        print(json.dumps({k: v for k, v in record.items() if not k.startswith("_")}), flush=True)

    try:
        for sentence in args.text:
            try:
                emit(perceiver.text(sentence))
            except PerceiveError as e:
                failed += 1
                print(f"mmstream perceive: error: {e}", file=sys.stderr)
        for path in args.files:
            try:
                for record in perceiver.perceive(path):
                    emit(record)
            except PerceiveError as e:
                failed += 1
                print(f"mmstream perceive: error: {e}", file=sys.stderr)
    finally:
        if annotator is not None:
            annotator.close()
    if failed:
        print(f"mmstream perceive: {failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
