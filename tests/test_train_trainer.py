"""Training: loss goes down and beats chance, resume continues exactly, dropout/alignment behave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstream.model.checkpoint import load_checkpoint
from mmstream.train.dataset import WindowDataset
from mmstream.train.trainer import TrainError, alignment_loss, modality_dropout, pick_device, predict, train
from tests.train_support import tiny_config, tiny_synth


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_synth(tmp_path_factory.mktemp("synth"), sessions=10, segments=12)


def test_short_run_reduces_loss_and_beats_chance(manifest: Path, tmp_path: Path) -> None:
    cfg = tiny_config(manifest, tmp_path / "run", epochs=12, alignment_weight=0.1)
    res = train(cfg, progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert res.history[-1]["train_align"] > 0  # the alignment loss took part
    model, vocab, ckpt = load_checkpoint(res.best_checkpoint)
    ds = WindowDataset(manifest.parent / "ds")
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    held_out = np.asarray(split["val"] + split["test"])
    assert not set(ds.sessions[i] for i in held_out) & set(ds.sessions[i] for i in split["train"])
    pred = predict(model, vocab, ds, held_out, torch.device("cpu"))
    acc = float((pred["probs"].argmax(1) == pred["labels"]).mean())
    assert acc > 0.45, acc  # chance is 0.25 for 4 balanced classes
    assert ckpt["labels"]["emotion"] == ["angry", "happy", "sad", "neutral"]
    assert res.windows_per_s > 0


def test_resume_continues_exactly_as_an_uninterrupted_run(manifest: Path, tmp_path: Path) -> None:
    straight = train(tiny_config(manifest, tmp_path / "a", epochs=3), progress=False)
    train(tiny_config(manifest, tmp_path / "b", epochs=2), progress=False)
    resumed = train(tiny_config(manifest, tmp_path / "b", epochs=3), resume=True, progress=False)
    assert resumed.epochs_run == 3
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert resumed.history[-1]["train_loss"] == pytest.approx(straight.history[-1]["train_loss"], rel=1e-5)
    a, _, _ = load_checkpoint(straight.last_checkpoint)
    b, _, _ = load_checkpoint(resumed.last_checkpoint)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va.float(), vb.float(), atol=1e-5), k


def test_early_stopping_stops(manifest: Path, tmp_path: Path) -> None:
    res = train(tiny_config(manifest, tmp_path / "es", epochs=30, patience=1, lr=1e-6), progress=False)
    assert res.stopped_early and res.epochs_run < 30


def test_modality_dropout_never_drops_everything() -> None:
    g = torch.Generator().manual_seed(0)
    presence = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).repeat(200, 1)
    out = modality_dropout(presence, 0.6, g)
    assert torch.all(out <= presence)
    had = presence.sum(1) > 0
    assert torch.all(out[had].sum(1) >= 1)
    assert torch.all(out[~had] == 0)
    rate = 1 - out[::3].mean().item()
    assert 0.3 < rate < 0.8  # a real amount is dropped


def test_alignment_loss_prefers_aligned_embeddings() -> None:
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    presence = torch.ones(16, 3)
    aligned = alignment_loss({"video": z, "audio": z.clone(), "text": z.clone()}, presence, 0.1,
                             ["video", "audio", "text"])
    shuffled = alignment_loss({"video": z, "audio": z[torch.randperm(16)], "text": torch.randn(16, 8)}, presence, 0.1,
                              ["video", "audio", "text"])
    assert aligned < shuffled


def test_device_auto_and_bad_device() -> None:
    assert pick_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="CUDA is not available"):
            pick_device("cuda")
