"""Audio sources: the stamper's timing rules, audio files, and missing input devices.

Real PortAudio capture through PulseAudio is exercised at process level in test_sensor_nodes.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmstream.errors import DeviceNotFoundError, MmstreamError
from mmstream.sensors.audio_source import AudioFileSource, AudioStamper, MicrophoneSource, RawBlock
from tests.conftest import REPO
from tests.fixtures_media import make_speech_wav, make_tone_wav

NS = 1_000_000_000
RATE = 16000
BLOCK = 320  # 20 ms
BLOCK_NS = BLOCK * NS // RATE


def _block(i: int, t0: int, *, adc_error_ns: int = 0, delivery_ns: int = 300_000, overflow: bool = False,
           dropped: int = 0, lost_before: int = 0) -> RawBlock:
    """Block i of a stream whose first sample is at t0 (lost_before: samples lost earlier)."""
    first = t0 + (i * BLOCK + lost_before) * NS // RATE
    return RawBlock(samples=np.full((BLOCK, 1), i, np.float32), adc_host_ns=first + adc_error_ns,
                    callback_host_ns=first + BLOCK_NS + delivery_ns, overflow=overflow, dropped_samples=dropped)


def _run(stamper: AudioStamper, blocks: list[RawBlock]) -> list[tuple[int, np.ndarray, int]]:
    out = []
    for b in blocks:
        out.extend(stamper.push(b))
    return out


def test_ideal_device_gives_exact_contiguous_stamps() -> None:
    t0 = 1_700_000_000 * NS + 123_456
    out = _run(AudioStamper(RATE, settle_s=0.1), [_block(i, t0) for i in range(100)])
    assert len(out) == 100  # nothing lost while settling
    stamps = np.array([s for s, _, _ in out])
    assert stamps[0] == t0
    assert np.all(np.diff(stamps) == BLOCK_NS)
    assert [int(x[0, 0]) for _, x, _ in out] == list(range(100))  # order kept
    assert all(g == 0 for _, _, g in out)


def test_bogus_startup_adc_times_do_not_shift_or_gap_the_stream() -> None:
    # ALSA's pulse plugin: the first ~25 blocks report a delay of 741 ms, then the ADC time
    # catches up at 20 ms per block (measured on this machine).
    t0 = 5 * NS
    blocks = []
    for i in range(120):
        error = -741_000_000 if i < 25 else min(0, -741_000_000 + (i - 25) * 20_000_000)
        blocks.append(_block(i, t0, adc_error_ns=error))
    out = _run(AudioStamper(RATE, settle_s=0.2), blocks)
    stamps = np.array([s for s, _, _ in out])
    assert len(out) == 120 and all(g == 0 for _, _, g in out)
    assert np.all(np.diff(stamps) == BLOCK_NS)
    # anchored by causality: at most the delivery latency (0.3 ms) late, never early
    assert 0 <= stamps[0] - t0 <= 400_000


def test_jittery_adc_times_stay_contiguous() -> None:
    rng = np.random.default_rng(1)
    t0 = 7 * NS
    blocks = [_block(i, t0, adc_error_ns=int(rng.normal(0, 3e6)), delivery_ns=int(abs(rng.normal(2e6, 1e6))))
              for i in range(300)]
    out = _run(AudioStamper(RATE), blocks)
    stamps = np.array([s for s, _, _ in out])
    assert np.all(np.diff(stamps) == BLOCK_NS) and all(g == 0 for _, _, g in out)
    assert abs(stamps[0] - t0) < 10_000_000


def test_dropped_blocks_are_marked_and_re_anchored() -> None:
    t0 = NS
    stamper = AudioStamper(RATE, settle_s=0.0)
    blocks = [_block(i, t0) for i in range(10)]
    # blocks 10 and 11 were dropped by our queue: block 12 carries the count
    blocks += [_block(i, t0, dropped=2 * BLOCK if i == 12 else 0) for i in range(12, 20)]
    out = _run(stamper, blocks)
    stamps = [s for s, _, _ in out]
    gaps = [g for _, _, g in out]
    assert len(out) == 18
    assert gaps[10] == 2 * BLOCK and sum(gaps) == 2 * BLOCK
    assert stamps[10] - stamps[9] == 3 * BLOCK_NS  # the hole is visible in time
    assert stamps[10] == t0 + 12 * BLOCK_NS
    assert all(b - a == BLOCK_NS for a, b in zip(stamps[11:], stamps[12:]))
    assert stamper.gaps == 1 and stamper.gap_samples_total == 2 * BLOCK


def test_overflow_and_adc_jump_give_measured_gap() -> None:
    t0 = NS
    stamper = AudioStamper(RATE, settle_s=0.0, gap_threshold_s=0.05)
    lost = 4000  # 250 ms lost inside the device, reported only as an overflow flag
    blocks = [_block(i, t0) for i in range(5)]
    blocks.append(_block(5, t0, lost_before=lost, overflow=True))
    blocks += [_block(i, t0, lost_before=lost) for i in range(6, 10)]
    # later, an unflagged jump of 200 ms (> threshold) is also a gap
    blocks += [_block(i, t0, lost_before=lost + 3200) for i in range(10, 12)]
    out = _run(stamper, blocks)
    gaps = [g for _, _, g in out]
    stamps = [s for s, _, _ in out]
    assert gaps[5] == lost and gaps[10] == 3200 and sum(gaps) == lost + 3200
    assert stamps[5] == t0 + (5 * BLOCK + lost) * NS // RATE
    assert stamps[11] - stamps[10] == BLOCK_NS


def test_slow_device_clock_never_steps_back() -> None:
    t0 = NS
    # ADC time drifts 300 ms behind: stamps must stay contiguous, not jump backwards
    blocks = [_block(i, t0, adc_error_ns=-i * 3_000_000) for i in range(100)]
    out = _run(AudioStamper(RATE, settle_s=0.0), blocks)
    stamps = np.array([s for s, _, _ in out])
    assert np.all(np.diff(stamps) == BLOCK_NS) and all(g == 0 for _, _, g in out)


def test_flush_emits_blocks_held_for_settling() -> None:
    stamper = AudioStamper(RATE, settle_s=10.0)
    assert _run(stamper, [_block(i, NS) for i in range(3)]) == []
    out = stamper.flush()
    assert [s for s, _, _ in out] == [NS + i * BLOCK_NS for i in range(3)]


# --------------------------------------------------------------------------- files


def test_wav_file_chunks_are_contiguous(tmp_path: Path) -> None:
    path = make_tone_wav(tmp_path / "tone.wav", rate_hz=RATE, seconds=1.0)
    src = AudioFileSource(str(path), realtime=False, start_stamp_ns=NS, frame_id="mic0")
    chunks = []
    while (c := src.read()) is not None:
        chunks.append(c)
    src.close()
    assert len(chunks) == 50 and all(c.num_samples == BLOCK for c in chunks)
    assert [c.header.stamp_ns for c in chunks] == [NS + i * BLOCK_NS for i in range(50)]
    assert chunks[0].sample_rate_hz == RATE and chunks[0].header.frame_id == "mic0"
    assert np.sqrt(np.mean(np.concatenate([c.samples for c in chunks]) ** 2)) == pytest.approx(0.5 / np.sqrt(2), 0.01)


def test_wav_file_realtime_pacing(tmp_path: Path) -> None:
    path = make_tone_wav(tmp_path / "tone.wav", rate_hz=RATE, seconds=0.5)
    src = AudioFileSource(str(path), realtime=True)
    t0 = time.monotonic()
    n = 0
    while src.read() is not None:
        n += 1
    elapsed = time.monotonic() - t0
    assert n == 25 and 0.48 <= elapsed < 0.9, elapsed


def test_flac_stereo_downmix_int16_and_speech(tmp_path: Path) -> None:
    path = make_tone_wav(tmp_path / "st.flac", rate_hz=48000, seconds=0.2, channels=2)
    src = AudioFileSource(str(path), realtime=False, channels=1, dtype="int16", block_s=0.01)
    c = src.read()
    assert c is not None and c.samples.shape == (480, 1) and c.samples.dtype == np.int16 and c.sample_rate_hz == 48000
    src2 = AudioFileSource(str(path), realtime=False, channels=0)
    assert src2.read().samples.shape == (960, 2)  # type: ignore[union-attr]
    speech = make_speech_wav(tmp_path / "s.wav", "testing one two three")
    src3 = AudioFileSource(str(speech), realtime=False)
    total = 0
    while (c := src3.read()) is not None:
        total += c.num_samples
    assert src3.rate == 22050 and total > 22050 * 0.8


def test_bad_audio_files(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFoundError, match=r"audio file '.*missing\.wav' does not exist"):
        AudioFileSource(str(tmp_path / "missing.wav"))
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF but not really" * 10)
    with pytest.raises(DeviceNotFoundError, match=r"junk\.wav' cannot be read"):
        AudioFileSource(str(junk))
    st = make_tone_wav(tmp_path / "st.wav", channels=2, seconds=0.1)
    with pytest.raises(MmstreamError, match="has 2 channels; can publish those or 1"):
        AudioFileSource(str(st), channels=3)


# --------------------------------------------------------------------------- missing devices


def test_unknown_input_device_names_request_and_lists_inputs() -> None:
    with pytest.raises(DeviceNotFoundError) as err:
        MicrophoneSource(device="no_such_microphone_xyz")
    text = str(err.value)
    assert "microphone: audio input device 'no_such_microphone_xyz' could not be opened" in text
    assert ("input devices: " in text) or ("there are no audio input devices" in text)
    assert "--param source=/path/to/speech.wav" in text
    with pytest.raises(MmstreamError, match="dtype 'float64' unknown"):
        MicrophoneSource(dtype="float64")


def test_no_audio_device_at_all_says_so() -> None:
    # A process that cannot reach any sound server: PortAudio has no default input ("Error querying
    # device -1"); the error must say that no input device exists.
    code = ("import json\nfrom mmstream.sensors.audio_source import MicrophoneSource\n"
            "from mmstream.sensors.devices import list_input_devices\n"
            "devs, _ = list_input_devices()\n"
            "try:\n    MicrophoneSource()\n    print(json.dumps({'error': None, 'inputs': len(devs)}))\n"
            "except Exception as e:\n    print(json.dumps({'error': str(e), 'type': type(e).__name__, "
            "'inputs': len(devs)}))\n")
    env = dict(os.environ, PULSE_SERVER="unix:/nonexistent/pulse")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["inputs"]:
        pytest.skip(f"this host has {out['inputs']} input device(s) even without a sound server")
    assert out["type"] == "DeviceNotFoundError"
    assert "microphone: the default input device could not be opened (Error querying device -1)" in out["error"]
    assert "there are no audio input devices" in out["error"]


@given(events=st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(-4_000_000, 4_000_000)),
                       min_size=5, max_size=80))
def test_stamper_invariants_under_drops_and_jitter(events: list[tuple[int, bool, int]]) -> None:
    """Whatever is lost, stamps never go back, and each step is exactly the chunk plus its marked gap."""
    t0 = 3 * NS
    stamper = AudioStamper(RATE, settle_s=0.05)
    blocks, lost, i = [], 0, 0
    for dropped_blocks, overflow, jitter in events:
        i += dropped_blocks  # blocks that never reached the consumer
        blocks.append(_block(i, t0, adc_error_ns=jitter, overflow=overflow and i > 0,
                             dropped=dropped_blocks * BLOCK))
        lost += dropped_blocks * BLOCK
        i += 1
    out = _run(stamper, blocks) + stamper.flush()
    assert len(out) == len(blocks)
    for (s0, x0, _), (s1, _, g1) in zip(out, out[1:]):
        assert s1 - s0 == (x0.shape[0] + g1) * NS // RATE or abs(s1 - s0 - (x0.shape[0] + g1) * NS / RATE) <= 1
        assert s1 > s0
    assert sum(g for _, _, g in out) >= lost
