"""The bags of a run: finding them, their content hash, whether they hold what the model needs, ranges.

A command-line input is a bag (a ``.mcap`` file, a split series given as ``name.mcap``, a rosbag2
directory with ``metadata.yaml``, a directory of sqlite3 ``.db3`` files) or a directory of bags:
each ``.mcap`` file and each bag directory in it is one bag (not recursive below that).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from mmstream.bag.reader import BagReader, bag_files
from mmstream.errors import BagError
from mmstream.process.config import ProcessConfig
from mmstream.process.graph_clock import SYNC_INPUTS
from mmstream.process.task import BagTask

HASH_BLOCK = 1 << 20


@dataclass
class BagInput:
    path: str
    bag_id: str = ""        # sha256 of the bag's file contents (16 hex digits)
    error: str = ""         # unreadable (why)
    no_topics: str = ""     # readable, but nothing the model needs (which topics it has)
    start_ns: int = 0
    end_ns: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


def _is_bag_dir(p: Path) -> bool:
    return (p / "metadata.yaml").is_file() or any(p.glob("*.db3"))


def find_bags(inputs: list[str]) -> list[str]:
    """Every bag named by ``inputs`` (files, bag directories, directories of bags), in a stable order."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not _is_bag_dir(p):
            children = sorted(c for c in p.iterdir() if (c.is_file() and c.suffix == ".mcap")
                              or (c.is_dir() and _is_bag_dir(c)))
            if not children:
                raise BagError(f"input {p}: a directory holding no bags (.mcap files or rosbag2 directories)")
            out.extend(str(c) for c in children)
        else:
            out.append(str(p))
    seen: set[str] = set()
    return [b for b in out if not (b in seen or seen.add(b))]


def content_hash(bag: str) -> str:
    """sha256 over the bytes of the bag's files (and their names within the bag), 16 hex digits."""
    h = hashlib.sha256()
    p = Path(bag)
    files = sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else bag_files(bag)
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(HASH_BLOCK):
                h.update(block)
    return h.hexdigest()[:16]


def inspect_bag(bag: str, cfg: ProcessConfig) -> BagInput:
    """Hash, time span and the topic check of one bag; never raises for a bad bag (see ``error``)."""
    info = BagInput(bag)
    try:
        info.bag_id = content_hash(bag)
        reader = BagReader(bag, topic_map=dict(cfg.topic_map))
        types = reader.topic_types()
    except (BagError, OSError) as exc:
        info.error = str(exc)
        info.bag_id = info.bag_id or hashlib.sha256(bag.encode()).hexdigest()[:16]
        return info
    wanted = {SYNC_INPUTS[s][0] for s in cfg.sync.streams}
    if not any(reader.out_topic(t) in wanted for t in types):
        have = ", ".join(f"{t} ({ty})" for t, ty in sorted(types.items())) or "none"
        info.no_topics = (f"bag {bag}: no topic the model needs ({', '.join(sorted(wanted))}, after the topic map "
                          f"{dict(cfg.topic_map) or '{}'}); its topics: {have}")
        return info
    info.start_ns, info.end_ns = _span(reader)
    return info


def _span(reader: BagReader) -> tuple[int, int]:
    from mmstream.bag.info import bag_info

    try:
        d = bag_info(str(reader.path), exact_rates=False)
        return int(d.get("start_ns") or 0), int(d.get("end_ns") or 0)
    except (BagError, OSError, KeyError, TypeError, ValueError):
        return 0, 0  # unknown span (a damaged summary): processed whole


def plan_tasks(info: BagInput, cfg: ProcessConfig) -> list[BagTask]:
    """One task per bag, or per ``split_ns`` of bag time for long bags (cut on the hop grid)."""
    s = cfg.sync
    span = info.end_ns - info.start_ns
    if not cfg.split_ns or info.start_ns <= 0 or span <= cfg.split_ns:
        return [BagTask(info.path, info.bag_id)]
    step = max(s.hop_ns, cfg.split_ns // s.hop_ns * s.hop_ns)
    first = s.origin_ns + (info.start_ns - s.origin_ns) // s.hop_ns * s.hop_ns
    cuts = list(range(first + step, info.end_ns, step))
    bounds = [None, *cuts, None]
    n = len(bounds) - 1
    return [BagTask(info.path, info.bag_id, i, n, bounds[i], bounds[i + 1]) for i in range(n)]
