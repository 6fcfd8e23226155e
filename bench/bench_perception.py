"""``mmstream bench perception [--part asr|face|all]``: the perception stages, JSON on stdout.

asr   speech recognition (mmstream.asr: Silero VAD + pocketsphinx, as the speech node runs it):
      word error rate and real-time factor (process CPU seconds per audio second, one core) on
      espeak-ng speech (several voices and rates) and on the real read speech in pocketsphinx's
      source distribution when given (--real-speech DIR: its test/data, see docs/models.md);
      end-of-speech -> utterance latency: audio pushed in 20 ms chunks at real-time pace, from the
      wall time the chunk holding the last speech sample is pushed to the time the utterance is out.
face  the face stage (added by the face front-end work).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SENTENCES = [
    "the weather is nice today and i would like to go for a walk in the park",
    "please bring me a cup of coffee from the kitchen",
    "i am very happy to see you again my friend",
    "the robot turned left and stopped in front of the door",
    "this is terrible i am so angry about what happened",
    "can you tell me what time the meeting starts tomorrow",
]
VOICES = ("en-us", "en-us+f2", "en-gb-x-rp", "en+m3")
RATES_WPM = (130, 175)
CHUNK_S = 0.02


def _espeak(text: str, voice: str, wpm: int, path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), text], check=True, timeout=60,
                   capture_output=True)
    audio, rate = sf.read(str(path), dtype="float32")
    return audio, rate


def _decode(stream, audio: np.ndarray, rate: int, *, pace: bool = False, speech_end_s: float | None = None
            ) -> tuple[str, list[float]]:
    """Push ``audio`` in 20 ms chunks (pace: at real time); (text, end-of-speech latencies in seconds)."""
    n = int(rate * CHUNK_S)
    texts, latencies = [], []
    t_end_pushed = None
    start = time.perf_counter()
    for i in range(0, len(audio), n):
        if pace:
            time.sleep(max(0.0, start + (i + n) / rate - time.perf_counter()))  # the chunk is "captured" now
        out = stream.push(audio[i:i + n], 10**12 + i * 10**9 // rate, rate)
        if speech_end_s is not None and t_end_pushed is None and (i + n) / rate >= speech_end_s:
            t_end_pushed = time.perf_counter()
        for r in out:
            if r.final:
                texts.append(r.text)
                if t_end_pushed is not None:
                    latencies.append(time.perf_counter() - t_end_pushed)
    texts += [r.text for r in stream.flush() if r.final]
    return " ".join(texts), latencies


def _stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    a = np.asarray(xs)
    return {"p50": round(float(np.median(a)), 4), "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 4), "n": len(xs)}


def bench_asr(real_speech: Path | None = None, latency_runs: int = 6) -> dict:
    import soundfile as sf

    from mmstream.asr import open_speech_stream, word_error_rate

    stream = open_speech_stream()
    result: dict = {"model": "pocketsphinx 5.1.1 en-us (wheel), Silero VAD segments, second pass off"}
    per_voice: dict[str, dict] = {}
    cpu0, audio0 = stream.cpu_s, stream.audio_s
    all_pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice in VOICES:
            for wpm in RATES_WPM:
                pairs = []
                for k, text in enumerate(SENTENCES):
                    audio, rate = _espeak(text, voice, wpm, Path(tmp) / "s.wav")
                    pad = np.zeros(rate // 2, np.float32)
                    hyp, _ = _decode(stream, np.concatenate([pad, audio, pad, pad]), rate)
                    pairs.append((text, hyp))
                all_pairs += pairs
                per_voice[f"{voice}@{wpm}wpm"] = {"wer": round(word_error_rate(pairs), 3)}
        result["espeak"] = {"wer": round(word_error_rate(all_pairs), 3), "by_voice": per_voice,
                            "sentences": len(SENTENCES), "real_time_factor":
                                round((stream.cpu_s - cpu0) / (stream.audio_s - audio0), 3)}
        if real_speech is not None:
            pairs, cpu0, audio0 = [], stream.cpu_s, stream.audio_s
            for wav in sorted((real_speech / "librivox").glob("*.wav")):
                audio, rate = sf.read(str(wav), dtype="float32")
                hyp, _ = _decode(stream, np.concatenate([audio, np.zeros(rate, np.float32)]), rate)
                pairs.append((wav.with_suffix(".txt").read_text().strip(), hyp))
            raw = real_speech / "goforward.raw"
            if raw.is_file():
                audio = np.fromfile(raw, np.int16).astype(np.float32) / 32768
                hyp, _ = _decode(stream, np.concatenate([audio, np.zeros(16000, np.float32)]), 16000)
                pairs.append(("go forward ten meters", hyp))
            result["real_read_speech"] = {
                "source": "pocketsphinx-5.1.1 sdist test/data (LibriVox 'Sense and Sensibility' x5, goforward.raw)",
                "utterances": len(pairs), "wer": round(word_error_rate(pairs), 3),
                "real_time_factor": round((stream.cpu_s - cpu0) / max(1e-9, stream.audio_s - audio0), 3)}
        # end-of-speech -> utterance, at real-time pace
        latencies: list[float] = []
        for k in range(latency_runs):
            audio, rate = _espeak(SENTENCES[k % len(SENTENCES)], "en-us+f2", 150, Path(tmp) / "l.wav")
            loud = np.flatnonzero(np.abs(audio) > 0.01)
            lead = np.zeros(rate // 2, np.float32)
            _, lat = _decode(stream, np.concatenate([lead, audio, np.zeros(rate, np.float32)]), rate, pace=True,
                             speech_end_s=(lead.size + loud[-1] + 1) / rate)
            latencies += lat[-1:]
        result["end_of_speech_to_utterance_s"] = _stats(latencies)
        result["end_of_speech_note"] = ("min_silence_s 0.3 of the silence that ends an utterance, plus VAD framing "
                                        "(32 ms) and the final search")
    import resource

    result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("asr", "face", "all"), default="all")
    ap.add_argument("--real-speech", type=Path, help="pocketsphinx's test/data directory (real read speech)")
    ap.add_argument("--latency-runs", type=int, default=6)
    args = ap.parse_args(argv)
    out: dict = {}
    if args.part in ("asr", "all"):
        out["asr"] = bench_asr(args.real_speech, args.latency_runs)
    if args.part in ("face", "all"):
        face = globals().get("bench_face")
        out["face"] = face() if face is not None else {"skipped": "no face part in this file yet"}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
