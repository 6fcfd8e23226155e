"""``mmstream perceive`` on an image, a video, a wav, a sentence and a bad file; the ASR text weight."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.fixtures_media import require_tool
from tests.pretrained_support import espeak, fetched_models, make_window

SAMPLE = REPO / "mmstream" / "data" / "sample.mp4"


@pytest.mark.timeout(120)
def test_perceive_image_video_wav_sentence_and_a_bad_file(tmp_path: Path) -> None:
    fetched_models()
    require_tool("ffmpeg")
    require_tool("espeak-ng")
    image, video, wav, bad = tmp_path / "face.png", tmp_path / "clip.mp4", tmp_path / "happy.wav", tmp_path / "bad.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(SAMPLE), "-frames:v", "1", str(image)], check=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(SAMPLE), "-frames:v", "3", "-an", str(video)],
                   check=True)
    subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", "140", "-w", str(wav), "i am very happy to see you"],
                   check=True)
    bad.write_bytes(b"not an image")
    out = tmp_path / "ann"
    res = subprocess.run([sys.executable, "-m", "mmstream", "perceive", str(image), str(bad), str(video), str(wav),
                          "--text", "I am so angry about this", "--annotate", str(out)],
                         capture_output=True, text=True, timeout=110, cwd=REPO)
    assert res.returncode == 1, res.stderr  # the bad file fails at the end, the others still run
    assert f"{bad}: OpenCV cannot read it as an image" in res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    by_kind: dict[str, list[dict]] = {}
    for r in records:
        assert {"file", "faces", "speech", "text_emotion", "estimate"} <= set(r)
        by_kind.setdefault(r["kind"], []).append(r)
    assert sorted(by_kind) == ["audio", "image", "text", "video"]
    img = by_kind["image"][0]
    assert img["file"] == str(image) and len(img["faces"]) >= 1
    face = img["faces"][0]
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 and 0 <= y1 < y2 and 0 < face["score"] <= 1
    assert face["landmarks"] is None or len(face["landmarks"]) == 5
    assert max(face["expression"], key=face["expression"].get) == "happy"  # the sample's face smiles
    assert abs(sum(img["estimate"].values()) - 1) < 1e-2
    frames = by_kind["video"]
    assert [f["frame"] for f in frames] == [0, 1, 2] and frames[1]["stamp_s"] > 0 and frames[0]["faces"]
    audio = by_kind["audio"][0]
    assert audio["speech"] and "happy" in audio["speech"][0]["text"] and 0 < audio["speech"][0]["confidence"] <= 1
    assert max(audio["text_emotion"], key=audio["text_emotion"].get) == "happy"
    text = by_kind["text"][0]
    assert max(text["text_emotion"], key=text["text_emotion"].get) == "angry"
    assert (out / "face.png").is_file() and (out / "clip.mp4").stat().st_size > 0


@pytest.mark.timeout(60)
def test_asr_text_weighs_less_than_typed_text(tmp_path: Path) -> None:
    from mmstream.pretrained.cache import default_model_dir
    from mmstream.pretrained.text_emotion import ASR_TEXT_WEIGHT
    from mmstream.runtime.pipeline import InferencePipeline

    pipeline = InferencePipeline.open(default_model_dir(root=fetched_models()), backend="onnxruntime", fallback="none")
    said = "I am so happy to see you."
    speech = espeak(said, tmp_path)
    contributions = {}
    for k, source in enumerate(("keyboard", "asr")):
        w = make_window(10.0 * (k + 1), 10.0 * (k + 1) + len(speech) / 16000, audio=speech, texts=[said])
        w.utterances[0].source = source
        r = pipeline.run([w]).results[0]
        assert r.presence["text"] and r.top[0] == "happy"
        contributions[source] = r.contribution["text"]
    assert 0 < contributions["asr"] < contributions["keyboard"], contributions
    assert ASR_TEXT_WEIGHT < 1
