"""The generated benchmark: each modality carries the part of the label it is meant to, in real bags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmstream.bag.reader import BagReader
from mmstream.messages import AudioChunk, ImageFrame, TextUtterance
from mmstream.train.labels import read_labels
from mmstream.train.synthetic import AROUSAL, VALENCE, WORDS, SynthConfig, draw_face, generate, tone


def test_mouth_shows_valence() -> None:
    rng = np.random.default_rng(0)
    style = {"bg": (100, 100, 100), "skin": (180, 200, 230), "dx": 0, "dy": 0, "r": 20, "brow": 0, "noise": 0.0}
    smile = draw_face(rng, 64, 1, True, style).astype(int)
    frown = draw_face(rng, 64, -1, True, style).astype(int)

    def bend(img: np.ndarray) -> float:
        """Mean row of the mouth's pixels in the centre columns minus in the outer columns."""
        ys, xs = np.nonzero((img[..., 2] > 120) & (img[..., 1] < 60))  # the mouth's colour (BGR)
        centre = np.abs(xs - 32) <= 3
        return float(ys[centre].mean() - ys[np.abs(xs - 32) >= 7].mean())

    assert bend(smile) > 1.0   # corners up, middle down
    assert bend(frown) < -1.0  # corners down, middle up
    absent = draw_face(rng, 64, 1, False, style)
    assert np.all(absent == 100)  # no face: only the background


def test_pitch_shows_arousal() -> None:
    rng = np.random.default_rng(1)

    def f0(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x))
        return float(np.argmax(spec) * 16000 / x.size)

    assert 240 < f0(tone(rng, 1, 16000, 16000)) < 340
    assert 100 < f0(tone(rng, -1, 16000, 16000)) < 170


@pytest.mark.parametrize("audio", ["tone", "espeak"])
def test_sessions_are_bags_with_matching_labels(tmp_path: Path, audio: str) -> None:
    cfg = SynthConfig(sessions=2, segments_per_session=4, audio=audio, fps=4, frame_size=32, text_absent=0.0,
                      text_informative=1.0, voice_absent=0.0, face_absent=0.0)
    m = generate(tmp_path, cfg)
    assert [r["speaker"] for r in m["recordings"]] == ["spk00", "spk01"]
    for r in m["recordings"]:
        msgs = [b.msg for b in BagReader(tmp_path / r["bag"]).messages()]
        emo = [i for i in read_labels(tmp_path / r["labels"]) if i.task == "emotion"]
        assert len(emo) == 4 and all(i.end_ns - i.start_ns == 2_000_000_000 for i in emo)
        frames = [x for x in msgs if isinstance(x, ImageFrame)]
        assert len(frames) == 4 * 8 and frames[0].data.shape == (32, 32, 3)
        audio_s = sum(x.num_samples for x in msgs if isinstance(x, AudioChunk)) / 16000
        assert audio_s == pytest.approx(8.0)
        texts = [x for x in msgs if isinstance(x, TextUtterance)]
        assert len(texts) == 4
        for t, i in zip(sorted(texts, key=lambda t: t.start_ns), emo):
            assert (t.start_ns, t.end_ns) == (i.start_ns, i.end_ns)
            assert any(w in t.text for w in WORDS[i.label])  # informative text names the emotion
        assert {VALENCE[i.label] for i in emo} <= {-1, 1} and {AROUSAL[i.label] for i in emo} <= {-1, 1}
