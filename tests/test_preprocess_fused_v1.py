"""Shared numpy preprocessing: log-mel (torch parity), image resize, tokenizer/vocab, the registry,
and the fused_v1 preprocessor on real windows with missing modalities."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

from mmstream.errors import ModelError
from mmstream.messages import TextUtterance, Window
from mmstream.preprocess import Preprocessor, get_preprocessor, register_preprocessor, registered_kinds
from mmstream.preprocess.image import prepare_frame, resize_bilinear
from mmstream.preprocess.logmel import LogMelParams, fit_frames, frame_mask, log_mel
from mmstream.preprocess.tokenizer import Vocab, build_vocab, tokenize
from tests.model_package_support import model_package  # noqa: F401 - fixture


def _torch_log_mel(signal: np.ndarray, p: LogMelParams) -> np.ndarray:
    """An independent torch implementation: torch.stft + an HTK filterbank built here."""
    x = torch.from_numpy(signal.astype(np.float64))
    spec = torch.stft(x, n_fft=p.n_fft, hop_length=p.hop_length, window=torch.hann_window(p.n_fft, dtype=torch.float64),
                      center=True, pad_mode="constant", return_complex=True)
    power = spec.abs() ** 2  # bins × frames
    mel = lambda f: 2595.0 * torch.log10(1.0 + f / 700.0)  # noqa: E731
    inv = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    pts = inv(torch.linspace(mel(torch.tensor(p.f_min_hz, dtype=torch.float64)),
                             mel(torch.tensor(p.f_max_hz, dtype=torch.float64)), p.n_mels + 2, dtype=torch.float64))
    freqs = torch.linspace(0, p.sample_rate_hz / 2, p.n_fft // 2 + 1, dtype=torch.float64)
    fb = torch.zeros(p.n_mels, freqs.numel(), dtype=torch.float64)
    for m in range(p.n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        fb[m] = torch.clamp(torch.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), min=0)
    return torch.log(fb @ power + 1e-6).numpy()


def test_log_mel_matches_torch_on_real_speech(tmp_path: Path) -> None:
    wav = tmp_path / "s.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "I am so happy to see you"], check=True, timeout=30)
    subprocess.run(["sox", str(wav), "-r", "16000", "-c", "1", str(tmp_path / "s16.wav")], check=True, timeout=30)
    signal, rate = sf.read(tmp_path / "s16.wav", dtype="float32")
    p = LogMelParams()
    assert rate == p.sample_rate_hz
    ours, ref = log_mel(signal, p), _torch_log_mel(signal, p)
    assert ours.shape == ref.shape == (p.n_mels, 1 + len(signal) // p.hop_length)
    loud = ref > np.log(1e-3)  # compare where there is energy (log of tiny values amplifies fp error)
    assert loud.mean() > 0.3
    assert np.abs(ours - ref)[loud].max() < 1e-3
    assert np.abs(np.exp(ours) - np.exp(ref)).max() < 1e-3 * np.exp(ref).max()


def test_fit_frames_and_gap_mask() -> None:
    p = LogMelParams()
    sample_mask = np.ones(16000, bool)
    sample_mask[8000:12000] = False  # a 250 ms gap
    mel = log_mel(np.zeros(16000, np.float32), p)
    mask = frame_mask(sample_mask, p, mel.shape[1])
    assert mask[:50].all() and not mask[50:75].any() and mask[75:100].all()
    m2, k2 = fit_frames(mel, mask, 100)
    assert m2.shape == (64, 100) and k2.shape == (100,)
    m3, k3 = fit_frames(mel[:, :40], mask[:40], 100)
    assert k3[40:].sum() == 0 and np.allclose(m3[:, 40:], np.log(1e-6))


def test_resize_matches_opencv_and_crop_normalizes() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    np.testing.assert_allclose(resize_bilinear(img, 64),
                               cv2.resize(img.astype(np.float32), (64, 64), interpolation=cv2.INTER_LINEAR), atol=1e-3)
    square = img[:, 80:560]
    np.testing.assert_allclose(resize_bilinear(square, 64),
                               cv2.resize(square.astype(np.float32), (64, 64), interpolation=cv2.INTER_LINEAR), atol=1e-3)
    out = prepare_frame(img, 64, 0.5, 0.25, "bgr8")
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    red = np.zeros((10, 10, 3), np.uint8)
    red[..., 2] = 255  # BGR red
    rgb = prepare_frame(red, 4, 0.5, 0.25, "bgr8")
    assert np.allclose(rgb[0], 2.0) and np.allclose(rgb[2], -2.0)


def test_tokenizer_is_deterministic_and_vocab_round_trips(tmp_path: Path) -> None:
    assert tokenize("I'm SO happy!!  ＨＩ") == ["i'm", "so", "happy", "!", "!", "hi"]
    v = build_vocab(["b a a", "c b a"], max_size=10)
    assert v.tokens == ["<pad>", "<unk>", "a", "b", "c"]
    v.save(tmp_path / "vocab.txt")
    again = Vocab.load(tmp_path / "vocab.txt")
    assert again.tokens == v.tokens
    ids = again.encode("a zzz c", max_tokens=5)
    assert ids.tolist() == [2, 1, 4, 0, 0] and ids.dtype == np.int64
    assert again.encode("a " * 10, max_tokens=3).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])


def test_registry_lazy_import_unknown_kind_and_duplicates() -> None:
    spec = {"name": "x", "preprocessing": {"kind": "no_such_kind", "params": {}}}
    with pytest.raises(ModelError, match="unknown preprocessing kind 'no_such_kind'"):
        get_preprocessor(spec)
    with pytest.raises(ModelError, match="'preprocessing' must be a map"):
        get_preprocessor({"name": "x"})

    @register_preprocessor("test_kind_for_registry")
    class P(Preprocessor):
        pass

    assert "test_kind_for_registry" in registered_kinds()
    assert isinstance(get_preprocessor({"preprocessing": {"kind": "test_kind_for_registry"}}), P)
    with pytest.raises(ValueError, match="registered twice"):
        register_preprocessor("test_kind_for_registry")(type("Q", (Preprocessor,), {}))


def _window(frames: bool, audio: bool, text: str, gap: bool = False) -> Window:
    n_audio = 16000
    t = np.arange(n_audio) / 16000
    audio_arr = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[:, None] if audio else np.zeros((0, 1), np.float32)
    amask = np.ones(audio_arr.shape[0], bool)
    if gap and audio:
        amask[4000:8000] = False
        audio_arr[4000:8000] = 0
    fr = np.random.default_rng(0).integers(0, 256, (10, 120, 160, 3), dtype=np.uint8)
    return Window(start_ns=1, end_ns=1_000_000_001, sample_rate_hz=16000,
                  utterances=[TextUtterance(start_ns=0, end_ns=5, text=text)] if text else [],
                  presence={"video": frames, "audio": audio, "text": bool(text)},
                  frames=fr if frames else np.zeros((0, 0, 0, 3), np.uint8),
                  frame_mask=np.ones(10, bool) if frames else np.zeros(0, bool),
                  frame_stamps_ns=np.arange(10, dtype=np.int64) if frames else np.zeros(0, np.int64),
                  audio=audio_arr, audio_mask=amask)


def test_fused_v1_preprocessor_on_windows(model_package: Path) -> None:  # noqa: F811
    spec = json.loads((model_package / "model.json").read_text())
    pre = get_preprocessor(spec, model_package)
    windows = [_window(True, True, "I am happy"), _window(False, True, "", gap=True), _window(True, False, "")]
    feed, context = pre.prepare(windows)
    for item in spec["inputs"]:
        arr = feed[item["name"]]
        assert arr.dtype == np.dtype(item["dtype"]) and list(arr.shape[1:]) == item["shape"][1:], item
    assert feed["presence"].tolist() == [[1, 1, 1], [0, 1, 0], [1, 0, 0]]
    assert feed["tokens"][0, :3].tolist() == [pre.vocab.ids["i"], pre.vocab.ids["am"], pre.vocab.ids["happy"]]
    assert feed["frame_mask"][1].sum() == 0 and feed["frame_mask"][0].sum() == 4
    assert 0 < feed["audio_mask"][1].sum() < 100  # the gap is masked
    outputs = {"emotion_probs": np.full((3, 7), 1 / 7, np.float32), "event_probs": np.full((3, 3), 0.5, np.float32),
               "contribution": np.array([[0.2, 0.3, 0.5], [0, 1, 0], [1, 0, 0]], np.float32),
               "modality_presence": feed["presence"]}
    results = pre.postprocess(outputs, context)
    assert results[1].presence == {"video": False, "audio": True, "text": False}
    assert results[0].contribution["text"] == pytest.approx(0.5)
    assert results[0].labels[3] == "happy" and results[0].event_labels[1] == "speech_present"
    # numpy only: loading the preprocessor in a fresh process does not import torch
    code = ("import sys, json; from mmstream.preprocess import get_preprocessor, registered_kinds;"
            "assert 'fused_v1' not in registered_kinds();"
            "p = get_preprocessor(json.load(open(sys.argv[1])), sys.argv[2]);"
            "print(type(p).__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(model_package / "model.json"), str(model_package)],
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["FusedV1Preprocessor", "False"]


def test_missing_vocab_names_the_file(tmp_path: Path, model_package: Path) -> None:  # noqa: F811
    spec = json.loads((model_package / "model.json").read_text())
    with pytest.raises(ModelError, match=r"vocabulary file .*vocab.txt"):
        get_preprocessor(spec, tmp_path)


def test_face_crop_finds_the_face_and_masks_faceless_frames(model_package: Path) -> None:  # noqa: F811
    from skimage import data as skdata

    from tests.pretrained_support import fetched_models

    fetched_models()  # the Haar cascade comes from the pinned, checked pretrained files
    spec = json.loads((model_package / "model.json").read_text())
    spec["preprocessing"]["params"]["video"]["crop"] = "face"
    pre = get_preprocessor(spec, model_package)
    face = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)  # 512×512, one face near the top middle
    with_face = _window(True, False, "")
    with_face.frames = np.repeat(face[None], 10, axis=0)
    blank = _window(True, False, "")
    blank.frames = np.full((10, 512, 512, 3), 90, np.uint8)
    feed, context = pre.prepare([with_face, blank])
    assert feed["frame_mask"][0].sum() == 4 and feed["frame_mask"][1].sum() == 0
    assert feed["presence"][:, 0].tolist() == [1.0, 0.0]
    n = 2
    outputs = {"emotion_probs": np.full((n, 7), 1 / 7, np.float32), "event_probs": np.zeros((n, 3), np.float32),
               "contribution": np.zeros((n, 3), np.float32), "modality_presence": feed["presence"]}
    results = pre.postprocess(outputs, context)
    x1, y1, x2, y2 = results[0].boxes[0]
    assert results[0].box_labels == ["face"] and results[0].image_width == 512
    assert results[0].box_scores.shape == (1,) and results[0].box_scores[0] > 0  # the cascade's confidence
    assert 120 < (x1 + x2) / 2 < 300 and 40 < (y1 + y2) / 2 < 220, results[0].boxes  # the astronaut's face
    assert len(results[1].boxes) == 0


def test_fused_v1_rejects_bad_windows_with_bad_window_error(model_package: Path) -> None:  # noqa: F811
    from mmstream.errors import BadWindowError

    spec = json.loads((model_package / "model.json").read_text())
    pre = get_preprocessor(spec, model_package)
    good = _window(True, True, "hi")
    stereo_less = _window(True, True, "")
    stereo_less.audio = np.zeros((16000, 0), np.float32)
    with pytest.raises(BadWindowError, match=r"window 1 of the batch \[1, 1000000001\) ns: audio \(16000, 0\) has no "
                                             r"channels"):
        pre.prepare([good, stereo_less])
    rgba = _window(True, False, "")
    rgba.frames = np.zeros((10, 120, 160, 4), np.uint8)
    with pytest.raises(BadWindowError, match=r"bgr8 frames with 4 channels .* expected 3"):
        pre.prepare([rgba])
    feed, context = pre.prepare([good])  # and a good window still goes through
    assert context.size == 1 and feed["presence"].tolist() == [[1, 1, 1]]
