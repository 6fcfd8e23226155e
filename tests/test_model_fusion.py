"""Fusion strategies and the fused model: presence masks, padding, contributions, training-readiness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmstream.model.config import FUSIONS, FusedModelConfig, TextConfig
from mmstream.model.export import golden_inputs
from mmstream.model.fused import FusedModel


def _batch(cfg: FusedModelConfig, b: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in golden_inputs(cfg, b, seed).items()}


def _model(fusion: str, **kw) -> FusedModel:
    torch.manual_seed(0)
    return FusedModel(FusedModelConfig(fusion=fusion, **kw)).eval()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_missing_modality_content_never_changes_the_output(fusion: str) -> None:
    model = _model(fusion)
    batch = _batch(model.cfg)
    batch["presence"][:] = torch.tensor([1.0, 0.0, 1.0])  # audio marked missing, but its tensors hold data
    batch["audio_mask"][:] = 1.0
    other = {k: v.clone() for k, v in batch.items()}
    other["logmel"] = torch.randn_like(other["logmel"]) * 10
    with torch.no_grad():
        a, b = model(batch), model(other)
    torch.testing.assert_close(a["emotion_logits"], b["emotion_logits"], rtol=0, atol=1e-6)
    torch.testing.assert_close(a["event_logits"], b["event_logits"], rtol=0, atol=1e-6)
    assert torch.all(a["contribution"][:, 1] == 0)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_contributions_sum_to_one_over_present_and_all_missing_is_finite(fusion: str) -> None:
    model = _model(fusion)
    batch = _batch(model.cfg)  # rows cover all 8 presence patterns, row with pattern 0 = nothing present
    with torch.no_grad():
        out = model(batch)
    pres = out["presence"]
    contrib = out["contribution"]
    assert torch.isfinite(out["emotion_logits"]).all() and torch.isfinite(contrib).all()
    assert torch.all(contrib[pres == 0] == 0)
    any_present = pres.sum(1) > 0
    torch.testing.assert_close(contrib[any_present].sum(1), torch.ones(int(any_present.sum())))
    assert torch.all(contrib[~any_present] == 0) and (~any_present).any()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_masked_video_frames_are_ignored(fusion: str) -> None:
    model = _model(fusion)
    batch = _batch(model.cfg)
    batch["frame_mask"][:, 2:] = 0.0
    other = {k: v.clone() for k, v in batch.items()}
    other["frames"][:, 2:] = 99.0
    with torch.no_grad():
        torch.testing.assert_close(model(batch)["fused"], model(other)["fused"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_text_padding_length_does_not_matter(encoder: str) -> None:
    torch.manual_seed(0)
    cfg = FusedModelConfig(text=TextConfig(encoder=encoder, max_tokens=32))
    model = FusedModel(cfg).eval()
    tokens = torch.zeros(2, 32, dtype=torch.long)
    tokens[0, :5] = torch.tensor([5, 6, 7, 8, 9])
    tokens[1, :2] = torch.tensor([3, 4])
    with torch.no_grad():
        full = model.text(tokens)
        short = model.text(tokens[:, :8])  # same real tokens, less padding
    torch.testing.assert_close(full, short, rtol=0, atol=1e-5)


def test_presence_flag_alone_cannot_make_an_empty_modality_present() -> None:
    model = _model("gated")
    batch = _batch(model.cfg, 2)
    batch["presence"][:] = 1.0
    batch["frame_mask"][:] = 1.0
    batch["audio_mask"][:] = 1.0
    batch["tokens"][1] = 0  # no text at all in row 1
    out = model(batch)
    assert out["presence"][1].tolist() == [1.0, 1.0, 0.0]


def test_forward_is_trainable_and_returns_embeddings() -> None:
    model = FusedModel(FusedModelConfig(fusion="attention", text=TextConfig(encoder="transformer"))).train()
    batch = _batch(model.cfg, 4)
    out = model(batch)
    assert set(out["embeddings"]) == {"video", "audio", "text"}
    assert out["embeddings"]["audio"].shape == (4, model.cfg.embed_dim)
    loss = torch.nn.functional.cross_entropy(out["emotion_logits"], torch.tensor([0, 1, 2, 3])) + \
        torch.nn.functional.binary_cross_entropy_with_logits(out["event_logits"], torch.ones(4, 3))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > 0.9 * len(grads)


def test_heads_follow_config_labels() -> None:
    cfg = FusedModelConfig(heads=("emotion",), emotion_labels=("calm", "excited"))
    out = FusedModel(cfg).eval()(_batch(cfg, 2))
    assert out["emotion_logits"].shape == (2, 2) and "event_logits" not in out
    assert FusedModel(cfg).output_names() == ("emotion_probs", "contribution", "modality_presence")
    assert np.isfinite(out["emotion_logits"].detach().numpy()).all()
