"""Text sources: subtitle and JSON-lines parsing, stdin-style streams, the ZeroMQ socket, bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import zmq

from mmstream.errors import MmstreamError
from mmstream.sensors.text_sources import (StreamTextSource, TextPolicy, TimedTextSource, ZmqTextSource, clean_text,
                                           load_timed_text, parse_jsonl, parse_srt, parse_vtt)

MS = 1_000_000
NS = 1_000_000_000


class Rejects:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, reason: str, detail: str) -> None:
        self.items.append((reason, detail))

    @property
    def reasons(self) -> list[str]:
        return [r for r, _ in self.items]


def test_clean_text_rules() -> None:
    rej = Rejects()
    policy = TextPolicy(max_chars=5)
    assert clean_text(b"  hi \r", policy, rej, "x") == "hi"
    assert clean_text(b"\xc3\x28", policy, rej, "line 3") is None
    assert clean_text("   ", policy, rej, "line 4") is None
    assert clean_text("abcdefgh", policy, rej, "line 5") == "abcde"
    assert clean_text("é€𝄞", policy, rej, "line 6") == "é€𝄞"  # multi-byte characters count as one
    assert rej.reasons == ["invalid-utf8", "empty", "too-long"]
    assert rej.items[0][1].startswith("line 3: byte 0 is not valid UTF-8")
    assert rej.items[2][1] == "line 5: 8 characters, truncated to max_chars=5"


def test_parse_srt_with_tags_multiline_crlf_bom_and_bad_blocks() -> None:
    data = ("\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\n<b>Hello</b> there\r\nsecond line\r\n\r\n"
            "2\r\n00:01:02,05 --> 00:01:03,000\r\nshort millis\r\n\r\n"
            "3\r\nnot a timing\r\ntext\r\n\r\n"
            "4\r\n00:00:05,000 --> 00:00:04,000\r\nbackwards\r\n\r\n"
            "5\r\n00:00:06,000 --> 00:00:07,000\r\n\r\n"
            "6\r\n01:00:00,000 --> 01:00:01,000\r\nlast\r\n").encode()
    rej = Rejects()
    cues = parse_srt(data, name="a.srt", reject=rej)
    assert [(c.start_ns, c.end_ns, c.text) for c in cues] == [
        (1000 * MS, 2500 * MS, "Hello there second line"),
        (62_050 * MS, 63_000 * MS, "short millis"),
        (3600 * NS, 3601 * NS, "last"),
    ]
    assert rej.reasons == ["bad-cue", "bad-cue", "empty"]
    assert "a.srt line 10" in rej.items[0][1]


def test_parse_srt_invalid_utf8_skips_only_that_cue() -> None:
    data = b"1\n00:00:01,000 --> 00:00:02,000\ngood\n\n2\n00:00:03,000 --> 00:00:04,000\nbad \xff\n\n" \
           b"3\n00:00:05,000 --> 00:00:06,000\nalso good\n"
    rej = Rejects()
    assert [c.text for c in parse_srt(data, reject=rej)] == ["good", "also good"]
    assert rej.reasons == ["invalid-utf8"]


def test_parse_vtt() -> None:
    data = b"""WEBVTT - a title

NOTE this is a comment
spanning lines

STYLE
::cue { color: red }

intro
00:01.000 --> 00:02.000 align:start position:10%
<v Alice>Hi <c.loud>there</c>

00:00:03.500 --> 00:00:04.000
second

01:00:00.000 --> 01:00:00.250
an hour in
"""
    cues = parse_vtt(data, name="b.vtt")
    assert [(c.start_ns, c.end_ns, c.text) for c in cues] == [
        (1 * NS, 2 * NS, "Hi there"), (3500 * MS, 4 * NS, "second"), (3600 * NS, 3600 * NS + 250 * MS, "an hour in")]
    with pytest.raises(MmstreamError, match="not a WebVTT file"):
        parse_vtt(b"1\n00:00:01,000 --> 00:00:02,000\nx\n", name="c.vtt")


def test_subtitle_blocks_without_timing_are_reported_wherever_they_are() -> None:
    """pysubs2 would glue a block without a timing line onto the cue before it, or drop it before the
    first cue: each is reported by line and skipped, and the cues around it keep only their own text."""
    srt = (b"stray header\n\n1\n00:00:01,000 --> 00:00:02,000\nfirst\n\nnot a cue\n\n"
           b"2\n00:00:03,000 --> 00:00:04,000\nsecond\n\ntrailing junk\n")
    rej = Rejects()
    cues = parse_srt(srt, name="j.srt", reject=rej)
    assert [(c.start_ns, c.text) for c in cues] == [(NS, "first"), (3 * NS, "second")]
    assert rej.items == [("bad-cue", "j.srt line 1: no 'HH:MM:SS,mmm --> HH:MM:SS,mmm' line; block skipped"),
                         ("bad-cue", "j.srt line 7: no 'HH:MM:SS,mmm --> HH:MM:SS,mmm' line; block skipped"),
                         ("bad-cue", "j.srt line 13: no 'HH:MM:SS,mmm --> HH:MM:SS,mmm' line; block skipped")]
    vtt = (b"WEBVTT\nKind: captions\n\n00:01.000 --> 00:02.000\none\n\nNOTE between cues\n\n"
           b"cue-2\n00:03.000 --> 00:04.000\ntwo\n\nno timing here\nat all\n\n00:05.000 --> 00:06.000\nthree\n")
    rej = Rejects()
    assert [c.text for c in parse_vtt(vtt, name="k.vtt", reject=rej)] == ["one", "two", "three"]
    assert rej.reasons == ["bad-cue"] and rej.items[0][1].startswith("k.vtt line 13: no '[HH:]MM:SS.mmm")
    rej = Rejects()
    assert parse_srt(b"just some text\n\nand more\n", name="t.srt", reject=rej) == []
    assert [d.split(":")[0] for d in (i[1] for i in rej.items)] == ["t.srt line 1", "t.srt line 3"]


def test_parse_jsonl_units_and_bad_lines() -> None:
    lines = [
        json.dumps({"text": "seconds", "start": 1.5, "end": 2}),
        json.dumps({"text": "nanos", "start_ns": 5, "end_ns": 7, "language": "es"}),
        json.dumps({"text": "suffix", "start_s": 3, "end_s": 3.25}),
        "not json",
        json.dumps({"text": "no times"}),
        json.dumps(["a", "list"]),
        json.dumps({"text": "rev", "start": 2, "end": 1}),
        json.dumps({"text": " ", "start": 0, "end": 1}),
        "",
    ]
    data = "\n".join(lines).encode() + b"\n\xff\xfe\n"
    rej = Rejects()
    cues = parse_jsonl(data, name="c.jsonl", reject=rej)
    assert [(c.text, c.start_ns, c.end_ns, c.language) for c in cues] == [
        ("seconds", 1500 * MS, 2 * NS, None), ("nanos", 5, 7, "es"), ("suffix", 3 * NS, 3250 * MS, None)]
    assert rej.reasons == ["bad-json", "bad-json", "bad-json", "bad-cue", "empty", "invalid-utf8"]
    assert rej.items[0][1].startswith("c.jsonl line 4:")


def test_load_timed_text_dispatch_and_errors(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"text": "b", "start": 2, "end": 3}\n{"text": "a", "start": 1, "end": 2}\n')
    assert [c.text for c in load_timed_text(str(tmp_path / "x.jsonl"))] == ["a", "b"]  # sorted by start
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(MmstreamError, match=r"unknown kind '\.txt'"):
        load_timed_text(str(tmp_path / "x.txt"))
    with pytest.raises(MmstreamError, match="cannot be read"):
        load_timed_text(str(tmp_path / "missing.srt"))


def test_timed_source_stamps_pacing_and_loop(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "one", "start": 0.0, "end": 0.1}\n{"text": "two", "start": 0.15, "end": 0.3}\n')
    src = TimedTextSource(str(path), policy=TextPolicy(source="file:t", language="it"), start_stamp_ns=NS)
    t0 = time.monotonic()
    got = []
    while not src.finished and time.monotonic() - t0 < 5:
        got += [(time.monotonic() - t0, u) for u in src.poll(0.02)]
    assert [u.text for _, u in got] == ["one", "two"]
    assert [(u.start_ns, u.end_ns, u.header.stamp_ns) for _, u in got] == [
        (NS, NS + 100 * MS, NS + 100 * MS), (NS + 150 * MS, NS + 300 * MS, NS + 300 * MS)]
    assert got[0][0] == pytest.approx(0.1, abs=0.05) and got[1][0] == pytest.approx(0.3, abs=0.05)
    assert got[0][1].language == "it" and got[0][1].source == "file:t"
    fast = TimedTextSource(str(path), realtime=False, loop=True, start_stamp_ns=NS)
    utts = fast.poll(0) + fast.poll(0)
    assert len(utts) >= 4 and not fast.finished
    starts = [u.start_ns for u in utts[:5]]
    assert starts == sorted(starts) and utts[2].start_ns == NS + 1300 * MS  # lap = last end + 1 s


def test_stream_source_reads_lines_until_eof() -> None:
    r, w = os.pipe()
    rej = Rejects()
    src = StreamTextSource(os.fdopen(r, "rb"), policy=TextPolicy(max_chars=10), reject=rej, name="pipe")
    with os.fdopen(w, "wb") as f:
        f.write(b"first\n\nsecond line that is long\r\n\xff\n")
    got = []
    deadline = time.monotonic() + 5
    while not src.finished and time.monotonic() < deadline:
        got += src.poll(0.05)
    assert src.finished
    assert [u.text for u in got] == ["first", "second lin"]
    assert rej.reasons == ["empty", "too-long", "invalid-utf8"]
    assert "pipe line 4" in rej.items[2][1]


@pytest.mark.parametrize("kind", ["PULL", "REP"])
def test_zmq_source(kind: str) -> None:
    rej = Rejects()
    src = ZmqTextSource("tcp://127.0.0.1:*", socket_type=kind, policy=TextPolicy(source="socket"), reject=rej)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH if kind == "PULL" else zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(src.endpoint)
    payloads = [b"hello", json.dumps({"text": "timed", "start_ns": 100, "end_ns": 200}).encode(), b"\xff",
                json.dumps({"start_ns": 1}).encode(), b'{"text": "x", "start_ns": true}', b"{broken json"]
    got, replies = [], []
    try:
        for p in payloads:
            sock.send(p)
            if kind == "REP":
                deadline = time.monotonic() + 5
                while not sock.poll(0) and time.monotonic() < deadline:
                    got += src.poll(0.02)
                replies.append(json.loads(sock.recv()))
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got += src.poll(0.02)
    finally:
        sock.close()
        ctx.term()
        src.close()
    assert [u.text for u in got] == ["hello", "timed", "{broken json"]  # not JSON: taken as plain text
    assert (got[1].start_ns, got[1].end_ns) == (100, 200)
    assert got[0].start_ns == got[0].end_ns > 0
    assert rej.reasons == ["invalid-utf8", "bad-json", "bad-json"]
    if kind == "REP":
        assert [r["ok"] for r in replies] == [True, True, False, False, False, True]


def test_zmq_source_bad_endpoint() -> None:
    with pytest.raises(MmstreamError, match="cannot bind PULL at 'nonsense://x'"):
        ZmqTextSource("nonsense://x")
    with pytest.raises(MmstreamError, match="socket type 'PUB' unknown"):
        ZmqTextSource("tcp://127.0.0.1:*", socket_type="PUB")
