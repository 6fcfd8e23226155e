"""Config round trips, the variant registry, and checkpoints that carry config/labels/preprocessing/vocab."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmstream.errors import ModelError
from mmstream.model.checkpoint import load_checkpoint, save_checkpoint
from mmstream.model.config import FusedModelConfig, TextConfig
from mmstream.model.export import golden_inputs
from mmstream.model.registry import create_model, get_config, list_variants
from mmstream.preprocess.tokenizer import Vocab


def test_config_round_trips_through_a_dict() -> None:
    cfg = FusedModelConfig(fusion="attention", text=TextConfig(encoder="transformer", layers=2),
                           emotion_labels=("a", "b"))
    again = FusedModelConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_config_rejects_unknown_keys_and_values() -> None:
    with pytest.raises(ValueError, match="unknown keys.*'fusoin'"):
        FusedModelConfig.from_dict({"fusoin": "gated"})
    with pytest.raises(ValueError, match="fusion 'sum'"):
        FusedModelConfig(fusion="sum")
    with pytest.raises(ValueError, match="heads"):
        FusedModelConfig(heads=())


def test_registry_has_every_fusion_and_applies_overrides() -> None:
    names = list_variants()
    for v in ("fused_v1", "fused_v1_concat", "fused_v1_additive", "fused_v1_multiplicative", "fused_v1_attention",
              "fused_v1_xformer"):
        assert v in names
    assert get_config("fused_v1_concat").fusion == "concat"
    assert get_config("fused_v1", fusion="additive").fusion == "additive"
    assert get_config("fused_v1").emotion_labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    with pytest.raises(KeyError, match="unknown model variant 'nope'"):
        get_config("nope")


def test_default_variant_is_small() -> None:
    n = sum(p.numel() for p in create_model("fused_v1").parameters())
    assert n < 500_000, n


def test_checkpoint_round_trip_reproduces_outputs(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = create_model("fused_v1_xformer").eval()
    vocab = Vocab.default()
    path = save_checkpoint(tmp_path / "m.pt", model, vocab, extra={"step": 7})
    loaded, vocab2, ckpt = load_checkpoint(path)
    assert vocab2.tokens == vocab.tokens
    assert ckpt["labels"]["emotion"] == list(model.cfg.emotion_labels)
    assert ckpt["preprocessing"]["kind"] == "fused_v1"
    assert ckpt["preprocessing"]["params"]["audio"]["n_mels"] == model.cfg.audio.n_mels
    assert ckpt["extra"] == {"step": 7}
    batch = {k: torch.from_numpy(v) for k, v in golden_inputs(model.cfg, 3).items()}
    with torch.no_grad():
        torch.testing.assert_close(model(batch)["emotion_logits"], loaded(batch)["emotion_logits"], rtol=0, atol=0)
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_or_foreign_checkpoint_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="bad.pt cannot be read"):
        load_checkpoint(bad)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="other.pt: not an mmstream-checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_whose_weights_do_not_match_its_config_fails(tmp_path: Path) -> None:
    model = create_model("fused_v1")
    path = save_checkpoint(tmp_path / "m.pt", model, Vocab.default())
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["embed_dim"] = 32
    torch.save(ckpt, path)
    with pytest.raises(ModelError, match="does not match its config"):
        load_checkpoint(path)


def test_vocab_larger_than_the_embedding_is_refused(tmp_path: Path) -> None:
    model = create_model("fused_v1", text=TextConfig(vocab_size=10))
    with pytest.raises(ModelError, match="vocab has"):
        save_checkpoint(tmp_path / "m.pt", model, Vocab.default())
