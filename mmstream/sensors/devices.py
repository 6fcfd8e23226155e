"""What capture devices exist on this host: video devices (``/dev/video*``) and audio devices.

Used by the sources to write error messages that list the alternatives, and by
``mmstream devices``. Nothing here opens a device for capture.
"""

from __future__ import annotations

import glob
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class VideoDevice:
    path: str     # /dev/videoN
    index: int    # N, what cv2.VideoCapture(N) opens
    name: str     # from /sys/class/video4linux/videoN/name, "" if unknown


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate_hz: float
    is_default_input: bool


def list_video_devices() -> list[VideoDevice]:
    """``/dev/video*`` nodes, sorted by index."""
    out = []
    for path in glob.glob("/dev/video*"):
        m = re.fullmatch(r"/dev/video(\d+)", path)
        if not m:
            continue
        index = int(m.group(1))
        name_file = Path(f"/sys/class/video4linux/video{index}/name")
        try:
            name = name_file.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            name = ""
        out.append(VideoDevice(path=path, index=index, name=name))
    return sorted(out, key=lambda d: d.index)


def describe_video_devices() -> str:
    devices = list_video_devices()
    if not devices:
        return "no video devices exist (no /dev/video* on this host)"
    return "video devices present: " + ", ".join(
        f"{d.path}" + (f" ({d.name})" if d.name else "") for d in devices)


def list_audio_devices() -> tuple[list[AudioDevice], str]:
    """All PortAudio devices and, if PortAudio itself is unusable, why (else "")."""
    try:
        import sounddevice as sd
    except OSError as exc:  # libportaudio missing
        return [], f"PortAudio is not available ({exc})"
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except Exception as exc:  # PortAudioError and friends
        return [], f"PortAudio could not list devices ({exc})"
    default_in = sd.default.device[0] if sd.default.device is not None else -1
    out = []
    for d in devices:
        out.append(AudioDevice(
            index=int(d["index"]), name=str(d["name"]), hostapi=str(hostapis[d["hostapi"]]["name"]),
            max_input_channels=int(d["max_input_channels"]), max_output_channels=int(d["max_output_channels"]),
            default_samplerate_hz=float(d["default_samplerate"]), is_default_input=int(d["index"]) == default_in))
    return out, ""


def list_input_devices() -> tuple[list[AudioDevice], str]:
    devices, problem = list_audio_devices()
    return [d for d in devices if d.max_input_channels > 0], problem


def describe_input_devices() -> str:
    devices, problem = list_input_devices()
    if problem:
        return problem
    if not devices:
        return ("there are no audio input devices (PortAudio found none; on Linux start PulseAudio "
                "or plug in a microphone)")
    return "input devices: " + ", ".join(
        f"{d.index} {d.name!r} ({d.max_input_channels} ch{', default' if d.is_default_input else ''})"
        for d in devices)


def devices_report() -> dict[str, Any]:
    """Everything ``mmstream devices --json`` prints."""
    audio, problem = list_audio_devices()
    return {"video": [asdict(d) for d in list_video_devices()],
            "audio": [asdict(d) for d in audio],
            "audio_problem": problem}


def format_devices_report(report: dict[str, Any]) -> str:
    lines = ["Cameras:"]
    if report["video"]:
        lines += [f"  {d['path']}  index {d['index']}  {d['name']}" for d in report["video"]]
    else:
        lines.append("  none (no /dev/video*); use a video file or source=pattern")
    lines.append("Audio devices:")
    if report["audio_problem"]:
        lines.append(f"  {report['audio_problem']}")
    elif not report["audio"]:
        lines.append("  none; use an audio file (source=speech.wav) or start PulseAudio")
    for d in report["audio"]:
        kinds = []
        if d["max_input_channels"]:
            kinds.append(f"in {d['max_input_channels']}")
        if d["max_output_channels"]:
            kinds.append(f"out {d['max_output_channels']}")
        mark = " *default input" if d["is_default_input"] else ""
        lines.append(f"  {d['index']:>3} {d['name']!r} [{d['hostapi']}] {', '.join(kinds)} "
                     f"@ {d['default_samplerate_hz']:.0f} Hz{mark}")
    return "\n".join(lines)
