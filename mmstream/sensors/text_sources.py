"""Text sources: standard input, timed text files (.srt, .vtt, JSON lines), and a ZeroMQ socket.

Every source has ``poll(timeout_s) -> list[TextUtterance]`` and ``finished``. Bad input never
stops a source: invalid UTF-8, empty text and malformed cues are reported through ``reject(reason,
detail)`` (a node passes :meth:`Node.count_rejected`) and skipped; text longer than ``max_chars``
is reported and truncated.

Stamps (integer ns, host clock): stdin and socket text without times get the time it arrived as
both start and end; timed files get ``start_stamp_ns`` + the cue's times and, with ``realtime``,
each cue is released when its end time has come. ``header.stamp_ns`` is the utterance's end
(the moment it was complete).

Socket protocol (``ZmqTextSource``): one frame per utterance, either plain UTF-8 text or a JSON
object ``{"text": str, "start_ns": int?, "end_ns": int?, "language": str?}``. With ``REP`` every
request gets a JSON reply ``{"ok": true}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pysubs2
from pysubs2.formats.subrip import SubripFormat
from pysubs2.formats.webvtt import WebVTTFormat

from mmstream.clock import NS_PER_S, host_now_ns
from mmstream.errors import MmstreamError
from mmstream.executor import IDLE, NOW, Wait
from mmstream.messages import Header, TextUtterance

Reject = Callable[[str, str], None]

DEFAULT_MAX_CHARS = 2000


def _ignore(reason: str, detail: str) -> None:
    pass


@dataclass(frozen=True)
class TextPolicy:
    """What every source enforces on the text it accepts."""

    max_chars: int = DEFAULT_MAX_CHARS
    language: str = "en"
    source: str = "text"
    frame_id: str = "text"


def clean_text(raw: bytes | str, policy: TextPolicy, reject: Reject, where: str) -> str | None:
    """UTF-8-decode, strip, and cap ``raw``; None (reported) if it cannot be used."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            reject("invalid-utf8", f"{where}: byte {exc.start} is not valid UTF-8 ({bytes(raw)[:40]!r}); skipped")
            return None
    else:
        text = raw
    text = text.replace("\x00", "").strip()
    if not text:
        reject("empty", f"{where}: empty text; skipped")
        return None
    if len(text) > policy.max_chars:
        reject("too-long", f"{where}: {len(text)} characters, truncated to max_chars={policy.max_chars}")
        text = text[: policy.max_chars]
    return text


def make_utterance(text: str, start_ns: int, end_ns: int, policy: TextPolicy,
                   language: str | None = None) -> TextUtterance:
    return TextUtterance(header=Header(stamp_ns=end_ns, frame_id=policy.frame_id), start_ns=start_ns,
                         end_ns=end_ns, text=text, source=policy.source, language=language or policy.language)


class TextSource:
    """Base: ``poll`` returns what is ready (waiting at most ``timeout_s``); ``finished`` at the end."""

    finished = False
    description = ""

    def poll(self, timeout_s: float = 0.05) -> list[TextUtterance]:
        raise NotImplementedError

    def next_wait(self) -> Wait:
        """What a node waits on before the next ``poll(0)`` has something (a deadline, an fd, a socket)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- stdin


class StreamTextSource(TextSource):
    """One utterance per line of a binary stream (standard input), read on a helper thread."""

    def __init__(self, stream: IO[bytes], *, policy: TextPolicy = TextPolicy(), reject: Reject = _ignore,
                 clock_ns: Callable[[], int] = host_now_ns, name: str = "stdin") -> None:
        self.policy, self._reject, self._clock, self.name = policy, reject, clock_ns, name
        self.description = name
        self._lines: queue.Queue[tuple[int, int, bytes] | None] = queue.Queue(maxsize=1000)
        self._signal_r, self._signal_w = os.pipe()  # readable while lines wait (the node's poll waits on it)
        os.set_blocking(self._signal_r, False)
        self._thread = threading.Thread(target=self._read, args=(stream,), name=f"text-{name}", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        lineno = 0
        try:
            for line in iter(stream.readline, b""):
                lineno += 1
                self._lines.put((lineno, self._clock(), line.rstrip(b"\r\n")))
                self._signal()
        except (OSError, ValueError):  # stream closed under us
            pass
        self._lines.put(None)
        self._signal()

    def _signal(self) -> None:
        try:
            os.write(self._signal_w, b"\0")
        except OSError:  # full (a wake-up is pending) or closed
            pass

    def next_wait(self) -> Wait:
        return IDLE if self.finished else Wait.until_ready(self._signal_r)

    def close(self) -> None:
        for fd in (self._signal_r, self._signal_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def poll(self, timeout_s: float = 0.05) -> list[TextUtterance]:
        out: list[TextUtterance] = []
        try:
            while os.read(self._signal_r, 4096):
                pass
        except OSError:
            pass
        try:
            item = self._lines.get(timeout=timeout_s) if timeout_s > 0 else self._lines.get_nowait()
        except queue.Empty:
            return out
        while True:
            if item is None:
                self.finished = True
                return out
            lineno, stamp_ns, raw = item
            text = clean_text(raw, self.policy, self._reject, f"{self.name} line {lineno}")
            if text is not None:
                out.append(make_utterance(text, stamp_ns, stamp_ns, self.policy))
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                return out


# --------------------------------------------------------------------------- timed text files


@dataclass(frozen=True)
class Cue:
    start_ns: int   # relative to the start of the file
    end_ns: int
    text: str
    language: str | None = None


#: what a timing line looks like, for messages
_TIMING = {"srt": "HH:MM:SS,mmm --> HH:MM:SS,mmm", "vtt": "[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm"}
_FORMATS = {"srt": SubripFormat, "vtt": WebVTTFormat}
_VTT_NO_CUE = ("NOTE", "STYLE", "REGION")   # WebVTT blocks that carry no cue text
_NOT_UTF8 = re.compile("[\udc80-\udcff]")   # what surrogateescape made of bytes that are not UTF-8
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def _decode_lines(data: bytes) -> list[str | None]:
    """Lines of a file; None for a line that is not valid UTF-8 (a BOM is dropped)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out: list[str | None] = []
    for raw in data.replace(b"\r\n", b"\n").split(b"\n"):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def parse_srt(data: bytes, *, name: str = "<srt>", policy: TextPolicy = TextPolicy(),
              reject: Reject = _ignore) -> list[Cue]:
    """SubRip: blocks of ``index``, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, text lines (parsed by pysubs2)."""
    return _subtitle_cues(data, "srt", name, policy, reject)


def parse_vtt(data: bytes, *, name: str = "<vtt>", policy: TextPolicy = TextPolicy(),
              reject: Reject = _ignore) -> list[Cue]:
    """WebVTT: a ``WEBVTT`` header, then cues ``[id]``, ``[HH:]MM:SS.mmm --> ... [settings]``, text (pysubs2)."""
    if not data.removeprefix(b"\xef\xbb\xbf").startswith(b"WEBVTT"):
        raise MmstreamError(f"{name}: not a WebVTT file (the first line must start with 'WEBVTT')")
    return _subtitle_cues(data, "vtt", name, policy, reject)


def _subtitle_cues(data: bytes, fmt: str, name: str, policy: TextPolicy, reject: Reject) -> list[Cue]:
    """Cues of a SubRip or WebVTT file as pysubs2 reads them, with what pysubs2 lets through reported and skipped.

    pysubs2 takes each line with two timestamps as a timing line and everything up to the next one as
    that cue's text; a block without a timing line thus lands in the cue before it (after a blank
    line, which real cue text never holds) or, before the first cue, is dropped. Such blocks are
    reported here as ``bad-cue``, and so are cues that end before they start. Bytes that are not
    UTF-8 reach pysubs2 as lone surrogates, so only the cue holding them is lost (``invalid-utf8``).
    """
    text = data.decode("utf-8-sig", errors="surrogateescape").replace("\r\n", "\n")
    events = pysubs2.SSAFile.from_string(text, format_=fmt).events
    lines = text.split("\n")
    timing = [i for i, line in enumerate(lines) if len(_FORMATS[fmt].TIMESTAMP.findall(line)) == 2]
    if len(timing) != len(events):  # the same rule as pysubs2's: line numbers below rely on it
        raise MmstreamError(f"{name}: pysubs2 {pysubs2.__version__} found {len(events)} cues on {len(timing)} "
                            "timing lines (expected one cue per line with two timestamps)")
    bounds = timing + [len(lines)]
    head = _blocks(lines, 0, bounds[0])
    if fmt == "vtt":
        head = head[1:]  # the WEBVTT line and its header
    for lineno, _ in _strays(head, fmt, before_cue=bool(events)):
        reject("bad-cue", f"{name} line {lineno}: no '{_TIMING[fmt]}' line; block skipped")
    cues = []
    for k, event in enumerate(events):
        where = f"{name} line {timing[k] + 1}"
        after = _blocks(lines, timing[k] + 1, bounds[k + 1])[1:]  # the first block is the cue's text
        for lineno, _ in _strays(after, fmt, before_cue=k + 1 < len(events)):
            reject("bad-cue", f"{name} line {lineno}: no '{_TIMING[fmt]}' line; block skipped")
        body = _BLANK_LINE.split(event.plaintext.strip("\n"), maxsplit=1)[0]
        if _NOT_UTF8.search(body):
            reject("invalid-utf8", f"{where}: cue text is not valid UTF-8; cue skipped")
            continue
        if event.end < event.start:
            reject("bad-cue", f"{where}: cue ends before it starts; skipped")
            continue
        cue_text = clean_text(" ".join(line.strip() for line in body.split("\n")), policy, reject, where)
        if cue_text is not None:
            cues.append(Cue(event.start * 1_000_000, event.end * 1_000_000, cue_text))
    return cues


def _blocks(lines: list[str], start: int, stop: int) -> list[tuple[int, str]]:
    """Blank-line separated blocks of ``lines[start:stop]``, each with the 1-based number of its first line."""
    out: list[tuple[int, str]] = []
    for i in range(start, stop):
        if not lines[i].strip():
            continue
        if out and i > start and lines[i - 1].strip():  # continues the block above
            out[-1] = (out[-1][0], f"{out[-1][1]}\n{lines[i]}")
        else:
            out.append((i + 1, lines[i]))
    return out


def _strays(blocks: list[tuple[int, str]], fmt: str, *, before_cue: bool) -> list[tuple[int, str]]:
    """The blocks between cues that are neither WebVTT comments, styles or regions nor the identifier
    of the cue that follows (``before_cue``): text without a timing line."""
    if fmt == "vtt":
        blocks = [b for b in blocks if not b[1].startswith(_VTT_NO_CUE)]
    if before_cue and blocks and "\n" not in blocks[-1][1] and (fmt == "vtt" or blocks[-1][1].strip().isdigit()):
        blocks = blocks[:-1]
    return blocks


def _json_time_ns(obj: dict[str, Any], key: str) -> int | None:
    """``<key>_ns`` (int ns) or ``<key>`` / ``<key>_s`` (seconds)."""
    if isinstance(obj.get(f"{key}_ns"), int) and not isinstance(obj.get(f"{key}_ns"), bool):
        return int(obj[f"{key}_ns"])
    for k in (key, f"{key}_s"):
        v = obj.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(round(v * NS_PER_S))
    return None


def parse_jsonl(data: bytes, *, name: str = "<jsonl>", policy: TextPolicy = TextPolicy(),
                reject: Reject = _ignore) -> list[Cue]:
    """One JSON object per line: ``{"text": ..., "start": s, "end": s}`` (or ``start_ns``/``end_ns``)."""
    cues = []
    for lineno, line in enumerate(_decode_lines(data), 1):
        where = f"{name} line {lineno}"
        if line is None:
            reject("invalid-utf8", f"{where}: not valid UTF-8; skipped")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            reject("bad-json", f"{where}: {exc.msg}; skipped")
            continue
        start, end = (_json_time_ns(obj, "start"), _json_time_ns(obj, "end")) if isinstance(obj, dict) else (None, None)
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or start is None or end is None:
            reject("bad-json", f"{where}: expected an object with 'text' (string), 'start' and 'end' "
                               f"(seconds, or start_ns/end_ns); skipped")
            continue
        if end < start:
            reject("bad-cue", f"{where}: end before start; skipped")
            continue
        text = clean_text(obj["text"], policy, reject, where)
        if text is not None:
            lang = obj.get("language") if isinstance(obj.get("language"), str) else None
            cues.append(Cue(start, end, text, lang))
    return cues


def load_timed_text(path: str, *, policy: TextPolicy = TextPolicy(), reject: Reject = _ignore) -> list[Cue]:
    """Cues of a ``.srt``, ``.vtt`` or ``.jsonl``/``.json`` file, sorted by start."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise MmstreamError(f"text file {path!r} cannot be read ({exc.strerror}); expected .srt, .vtt or .jsonl") \
            from None
    suffix = p.suffix.lower()
    parsers = {".srt": parse_srt, ".vtt": parse_vtt, ".jsonl": parse_jsonl, ".json": parse_jsonl,
               ".ndjson": parse_jsonl}
    if suffix not in parsers:
        raise MmstreamError(f"text file {path!r}: unknown kind {suffix!r}; expected one of {sorted(parsers)}")
    cues = parsers[suffix](data, name=p.name, policy=policy, reject=reject)
    return sorted(cues, key=lambda c: (c.start_ns, c.end_ns))


class TimedTextSource(TextSource):
    """Cues from a subtitle or JSON-lines file; stamps = start stamp + cue times; paced or not."""

    def __init__(self, path: str, *, policy: TextPolicy = TextPolicy(), reject: Reject = _ignore,
                 realtime: bool = True, loop: bool = False, start_stamp_ns: int = 0,
                 clock_ns: Callable[[], int] = host_now_ns) -> None:
        self.cues = load_timed_text(path, policy=policy, reject=reject)
        self.policy, self.realtime, self.loop = policy, realtime, loop
        self.description = f"timed text {path} ({len(self.cues)} cues)"
        self.start_stamp_ns = start_stamp_ns or clock_ns()
        self._origin_mono_ns = time.monotonic_ns()
        self._next = 0
        self._lap_ns = 0
        self._lap_len_ns = max((c.end_ns for c in self.cues), default=0) + NS_PER_S
        self.finished = not self.cues
        self._clock = clock_ns

    def restart_clock(self, start_stamp_ns: int = 0) -> None:
        """Start timing now (call after waiting for subscribers)."""
        if self._next == 0 and self._lap_ns == 0:
            self.start_stamp_ns = start_stamp_ns or self._clock()
            self._origin_mono_ns = time.monotonic_ns()

    def next_wait(self) -> Wait:
        if self.finished:
            return IDLE
        if not self.realtime:
            return NOW
        due = self._origin_mono_ns + self._lap_ns + self.cues[self._next].end_ns
        return Wait.seconds((due - time.monotonic_ns()) / NS_PER_S)

    def poll(self, timeout_s: float = 0.05) -> list[TextUtterance]:
        out: list[TextUtterance] = []
        deadline = time.monotonic_ns() + int(timeout_s * NS_PER_S)
        while not self.finished and len(out) < 64:
            cue = self.cues[self._next]
            if self.realtime:  # a cue is released once it has been fully said
                due = self._origin_mono_ns + self._lap_ns + cue.end_ns
                now = time.monotonic_ns()
                if now < due:
                    if out:
                        return out
                    if due > deadline:
                        time.sleep(max(0, deadline - now) / NS_PER_S)
                        return out
                    time.sleep((due - now) / NS_PER_S)
            start = self.start_stamp_ns + self._lap_ns
            out.append(make_utterance(cue.text, start + cue.start_ns, start + cue.end_ns, self.policy, cue.language))
            self._next += 1
            if self._next == len(self.cues):
                if self.loop:
                    self._next = 0
                    self._lap_ns += self._lap_len_ns
                else:
                    self.finished = True
        return out


# --------------------------------------------------------------------------- ZeroMQ socket


class ZmqTextSource(TextSource):
    """A bound PULL or REP socket that other programs send utterances to."""

    def __init__(self, endpoint: str, *, socket_type: str = "PULL", policy: TextPolicy = TextPolicy(),
                 reject: Reject = _ignore, clock_ns: Callable[[], int] = host_now_ns,
                 max_message_bytes: int = 1 << 20) -> None:
        import zmq

        kind = socket_type.upper()
        if kind not in ("PULL", "REP"):
            raise MmstreamError(f"text socket type {socket_type!r} unknown; expected PULL or REP")
        self._zmq = zmq
        self.policy, self._reject, self._clock = policy, reject, clock_ns
        self.kind = kind
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PULL if kind == "PULL" else zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        from mmstream import security  # loopback/ipc, or CURVE on a network address (docs/security.md)

        try:
            self._security = security.secure_server(self._sock, endpoint, domain=security.TEXT_INPUT_DOMAIN,
                                                    server_right=security.SUBSCRIBE,
                                                    client_right=security.PUBLISH, what="text socket")
            self._sock.bind(endpoint)
        except (zmq.ZMQError, MmstreamError) as exc:
            self._sock.close(0)
            if isinstance(exc, MmstreamError):
                self._ctx.term()
                raise
            self._security.release()
            self._ctx.term()
            raise MmstreamError(f"text socket: cannot bind {kind} at {endpoint!r} ({exc}); expected a free "
                                f"endpoint such as tcp://127.0.0.1:5599 or ipc:///tmp/text.sock") from None
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.description = f"{kind} socket {self.endpoint}"
        self._count = 0

    def _parse(self, frames: list[bytes]) -> tuple[TextUtterance | None, str]:
        self._count += 1
        where = f"{self.description} message {self._count}"
        now = self._clock()
        if len(frames) != 1:
            self._reject("multipart", f"{where}: {len(frames)} frames, expected 1; skipped")
            return None, f"expected 1 frame, got {len(frames)}"
        raw = frames[0]
        if raw.lstrip()[:1] == b"{":
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                obj = None
            if isinstance(obj, dict):
                return self._from_json(obj, now, where)
        text = clean_text(raw, self.policy, self._reject, where)
        if text is None:
            return None, "empty or not UTF-8"
        return make_utterance(text, now, now, self.policy), ""

    def _from_json(self, obj: dict[str, Any], now: int, where: str) -> tuple[TextUtterance | None, str]:
        start, end = obj.get("start_ns", now), obj.get("end_ns", obj.get("start_ns", now))
        if not isinstance(obj.get("text"), str) or any(not isinstance(v, int) or isinstance(v, bool)
                                                      for v in (start, end)):
            self._reject("bad-json", f"{where}: expected {{'text': str, 'start_ns': int, 'end_ns': int}}; skipped")
            return None, "expected {text: str, start_ns: int, end_ns: int}"
        if end < start:
            self._reject("bad-cue", f"{where}: end_ns {end} before start_ns {start}; skipped")
            return None, "end_ns before start_ns"
        text = clean_text(obj["text"], self.policy, self._reject, where)
        if text is None:
            return None, "empty text"
        lang = obj.get("language") if isinstance(obj.get("language"), str) else None
        return make_utterance(text, int(start), int(end), self.policy, lang), ""

    def next_wait(self) -> Wait:
        return Wait.until_ready(self._sock)

    def poll(self, timeout_s: float = 0.05) -> list[TextUtterance]:
        zmq = self._zmq
        out: list[TextUtterance] = []
        if not self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return out
        while len(out) < 256:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            msg, error = self._parse(frames)
            if msg is not None:
                out.append(msg)
            if self.kind == "REP":
                reply = {"ok": True} if msg is not None else {"ok": False, "error": error}
                self._sock.send(json.dumps(reply).encode())
        return out

    def close(self) -> None:
        self._sock.close(0)
        self._security.release()
        self._ctx.term()
