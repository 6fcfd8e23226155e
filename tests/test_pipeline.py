"""InferencePipeline: opening leaves no state behind, batches carry their own context, bad windows are
rejected with BadWindowError before any state moves, boxes carry the detector's scores."""

from __future__ import annotations

import numpy as np
import pytest

from mmstream.errors import BadWindowError
from mmstream.messages import Window
from mmstream.preprocess import get_preprocessor
from mmstream.runtime.auto import create_backend
from mmstream.runtime.pipeline import BatchOutput, InferencePipeline
from pretrained_support import fetched_models, make_window, sample_windows


@pytest.fixture(scope="module")
def model_dir():
    from mmstream.pretrained.cache import default_model_dir

    return default_model_dir(root=fetched_models())


@pytest.fixture(scope="module")
def sample() -> list[Window]:
    return sample_windows(window_s=1.0)[:6]


def _stream_is_fresh(stream) -> bool:  # noqa: ANN001
    t, v = stream.tracker, stream.vad
    return (t.full_scans == 0 and t.roi_scans == 0 and not t._last and v._next is None and not v._probs
            and not v.vad._state.any() and not stream.faces and stream.last_start_ns is None)


def _outputs(out: BatchOutput) -> list[tuple]:
    return [(r.probs, r.event_scores, r.presence, r.contribution, r.boxes.tolist(), r.box_scores.tolist(),
             r.image_width, r.image_height) for r in out.results]


def test_opening_leaves_no_state_and_matches_an_unchecked_preprocessor(model_dir, sample: list) -> None:  # noqa: ANN001
    pipe = InferencePipeline.open(model_dir, "onnxruntime", fallback="none")
    assert _stream_is_fresh(pipe.stream)  # the open check ran on a throwaway stream
    before = dict(vars(pipe.preprocessor))
    got = [_outputs(pipe.run([w])) for w in sample]
    assert not _stream_is_fresh(pipe.stream)  # the pipeline's own stream moved with the windows
    # ... and the preprocessor itself holds nothing new: the same attributes, the same objects
    assert {k: id(v) for k, v in vars(pipe.preprocessor).items()} == {k: id(v) for k, v in before.items()}

    fresh_pre = get_preprocessor(pipe.package.spec, pipe.package.directory)  # never checked at open
    fresh = InferencePipeline(pipe.package, fresh_pre, create_backend("onnxruntime", pipe.package))
    want = [_outputs(fresh.run([w])) for w in sample]
    assert got == want
    pipe.close()
    fresh.close()


def test_each_batch_carries_its_own_context(model_dir, sample: list) -> None:  # noqa: ANN001
    pipe = InferencePipeline.open(model_dir, "onnxruntime", fallback="none")
    pre = pipe.preprocessor
    face_feed, face_ctx = pre.prepare([sample[2]])
    none_feed, none_ctx = pre.prepare([make_window(0.0, 1.0, texts=["hello"])])
    none_out = pipe.backend.infer(none_feed)  # run and postprocess in the other order
    face_out = pipe.backend.infer(face_feed)
    face, = pre.postprocess(face_out, face_ctx)
    nothing, = pre.postprocess(none_out, none_ctx)
    assert len(face.boxes) == 1 and face.presence["audio"] and face.image_width == 640
    assert len(nothing.boxes) == 0 and nothing.presence == {"video": False, "audio": False, "text": True}
    assert set(face_ctx.stage_ms) == {"faces", "audio", "text"}


def test_boxes_carry_the_detectors_scores(model_dir, sample: list) -> None:  # noqa: ANN001
    pipe = InferencePipeline.open(model_dir, "onnxruntime", fallback="none")
    out = pipe.run(sample)
    scores = [float(s) for d in out.detections for s in d.box_scores]
    assert len(scores) == len(sample)  # one face in view in every window
    assert all(0 < s < 50 for s in scores) and len(set(scores)) > 1  # the cascade's confidence, not a constant 1
    for d in out.detections:
        d.validate()


def _bad(kind: str, good: Window) -> tuple[object, str]:
    w = make_window(good.start_ns / 1e9, good.end_ns / 1e9, frames=good.frames, audio=good.audio[:, 0],
                    texts=[u.text for u in good.utterances])
    if kind == "channels":
        w.frames = np.zeros((*w.frames.shape[:3], 4), np.uint8)
        return w, r"bgr8 frames with 4 channels .* expected 3"
    if kind == "float_frames":
        w.frames = w.frames.astype(np.float32)
        return w, r"frames are float32, expected uint8"
    if kind == "jpeg":
        w.frame_encoding = "jpeg"
        return w, r"frame_encoding 'jpeg', expected one of"
    if kind == "empty_frames":
        w.frames = np.zeros((w.frame_mask.shape[0], 0, 0, 3), np.uint8)
        return w, r"frame_mask marks frames present but frames .* are empty"
    if kind == "mask_length":
        w.frame_mask = w.frame_mask[:-1]
        return w, r"frame_mask .* disagree \(expected T×H×W×C, T, T\)"
    if kind == "no_channels":
        w.audio = np.zeros((w.audio.shape[0], 0), np.float32)
        return w, r"has no channels"
    if kind == "int_audio":
        w.audio = (w.audio * 32767).astype(np.int16)
        return w, r"audio is int16, expected float32"
    if kind == "rate":
        w.sample_rate_hz = 0
        return w, r"sample_rate_hz 0 .* expected a positive rate"
    if kind == "nan":
        w.audio[5, 0] = np.nan
        return w, r"NaN or infinite"
    if kind == "span":
        w.end_ns = w.start_ns
        return w, r"end_ns .* not after start_ns"
    return "not a window", r"window 1 of the batch is a str, expected a Window"


BAD_KINDS = ["channels", "float_frames", "jpeg", "empty_frames", "mask_length", "no_channels", "int_audio", "rate",
             "nan", "span", "not_a_window"]


def test_bad_windows_raise_bad_window_error_before_state_moves(model_dir, sample: list) -> None:  # noqa: ANN001
    pipe = InferencePipeline.open(model_dir, "onnxruntime", fallback="none")
    for kind in BAD_KINDS:
        bad, match = _bad(kind, sample[1])
        with pytest.raises(BadWindowError, match=match) as info:
            pipe.run([sample[0], bad])  # a good window first: it must not have moved the stream either
        if kind != "not_a_window":
            assert "window 1 of the batch [" in str(info.value)
        assert _stream_is_fresh(pipe.stream), kind
    # the good windows alone then give what a fresh pipeline gives
    fresh = InferencePipeline.open(model_dir, "onnxruntime", fallback="none")
    assert _outputs(pipe.run(sample[:2])) == _outputs(fresh.run(sample[:2]))


def test_empty_batch_and_mismatched_arrival_times(model_dir, sample: list) -> None:  # noqa: ANN001
    pipe = InferencePipeline.open(model_dir, "onnxruntime", fallback="none")
    out = pipe.run([])
    assert out.results == [] and out.estimates == [] and out.detections == []
    with pytest.raises(ValueError, match="1 arrival times for 2 windows"):
        pipe.run(sample[:2], [0.0])
    assert _stream_is_fresh(pipe.stream)


def test_advance_moves_the_stream_as_a_run_would(model_dir, sample: list) -> None:  # noqa: ANN001
    from mmstream.pretrained.expression_smoothing import ExpressionSmoother

    whole = InferencePipeline.open(model_dir, "onnxruntime", fallback="none")
    split = InferencePipeline.open(model_dir, "onnxruntime", fallback="none")
    for pipe in (whole, split):  # the expression smoother learns from outputs, which advance does not make
        pipe.stream.smoother = ExpressionSmoother(0.0)
    want = [_outputs(whole.run([w])) for w in sample][3:]
    split.advance(sample[:3])  # the windows before the range: preprocessed, not inferred
    assert [_outputs(split.run([w])) for w in sample[3:]] == want
