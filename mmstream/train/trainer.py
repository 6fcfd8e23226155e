"""The training loop: AdamW, cross-entropy per task (weighted sum), modality dropout, optional
cross-modal contrastive alignment, early stopping on validation macro-F1, checkpoints and resume.

Determinism: the batch order and the dropout masks of epoch e come from generators seeded with
(seed, e), so a run resumed from the checkpoint of epoch e continues exactly as if never stopped.

Files in ``out_dir``: ``last.pt`` (after every epoch: model, vocab, optimizer, history),
``best.pt`` (best validation macro-F1), ``history.json``, ``split.json``, ``train_config.yaml``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstream.errors import MmstreamError
from mmstream.model.checkpoint import load_checkpoint, save_checkpoint
from mmstream.model.config import FusedModelConfig
from mmstream.model.fused import FusedModel
from mmstream.model.registry import get_config
from mmstream.preprocess.tokenizer import Vocab, build_vocab
from mmstream.train.config import MODALITIES, TrainConfig
from mmstream.train.dataset import Recording, WindowDataset, build_dataset, read_manifest
from mmstream.train.metrics import macro_f1
from mmstream.train.splits import check_no_leakage, split_indices

log = logging.getLogger("mmstream.train")


class TrainError(MmstreamError):
    """Training cannot start or continue (bad device, mismatched checkpoint, empty split)."""


# --------------------------------------------------------------------------- setup helpers
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {name}: CUDA is not available here (torch {torch.__version__}); use cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise TrainError(f"--device {name!r}: {exc}") from exc


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def model_config(cfg: TrainConfig, emotion_labels: list[str], event_labels: list[str]) -> FusedModelConfig:
    base = get_config(cfg.model.variant).to_dict()
    d = _merge(base, cfg.model.overrides)
    d["emotion_labels"] = list(emotion_labels)
    d["event_labels"] = list(event_labels) or list(base["event_labels"])
    d["heads"] = ["emotion", "detection"] if event_labels else ["emotion"]
    try:
        return FusedModelConfig.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"model config (variant {cfg.model.variant!r} + overrides): {exc}") from exc


def recordings_of(cfg: TrainConfig) -> list[Recording]:
    if cfg.data.manifest:
        return read_manifest(cfg.data.manifest)
    return [Recording(**r) for r in cfg.data.recordings]


def prepare_dataset(cfg: TrainConfig, *, progress: bool = True) -> WindowDataset:
    """Build (or reuse) the dataset the config describes, with the preprocessing its model needs."""
    d = cfg.data
    labels_probe = model_config(cfg, d.emotion_labels or ["x"], d.event_labels)
    return build_dataset(recordings_of(cfg), d.dataset_dir or Path(cfg.out_dir) / "dataset", sync=d.sync,
                         preprocessing=labels_probe.preprocessing_params(), emotion_labels=d.emotion_labels or None,
                         event_labels=d.event_labels, min_overlap=d.min_overlap, topics=d.topics or None,
                         topic_map=d.topic_map or None, progress=progress, clock=d.clock)


def make_splits(ds: WindowDataset, cfg: TrainConfig) -> dict[str, np.ndarray]:
    groups = ds.groups(cfg.data.split_by)
    splits = split_indices(groups, tuple(cfg.data.split_fractions), cfg.data.split_seed)
    check_no_leakage(groups, splits)
    for name in ("train", "val"):
        if len(splits[name]) == 0:
            raise TrainError(f"split {name!r} is empty ({len(set(groups))} {cfg.data.split_by}s); "
                             "record more or change data.split_fractions")
    return splits


def to_torch(feed: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in feed.items() if k != "index"}


def restrict(batch: dict[str, torch.Tensor], modalities: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Zero the presence (and masks/tokens) of every modality not in ``modalities``."""
    if set(modalities) >= set(MODALITIES):
        return batch
    b = dict(batch)
    keep = torch.tensor([m in modalities for m in MODALITIES], dtype=b["presence"].dtype, device=b["presence"].device)
    b["presence"] = b["presence"] * keep
    if "video" not in modalities:
        b["frame_mask"] = torch.zeros_like(b["frame_mask"])
    if "audio" not in modalities:
        b["audio_mask"] = torch.zeros_like(b["audio_mask"])
    if "text" not in modalities:
        b["tokens"] = torch.zeros_like(b["tokens"])
    return b


def modality_dropout(presence: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Drop each present modality with probability p; a sample never loses all it had."""
    if p <= 0:
        return presence
    keep = (torch.rand(presence.shape, generator=gen) >= p).to(presence.dtype).to(presence.device)
    out = presence * keep
    lost_all = (out.sum(1) == 0) & (presence.sum(1) > 0)
    if lost_all.any():
        # restore one of the modalities the sample had, chosen at random
        r = torch.rand(presence.shape, generator=gen).to(presence.device) * presence
        pick = F.one_hot(r.argmax(1), presence.shape[1]).to(presence.dtype)
        out[lost_all] = pick[lost_all]
    return out


def alignment_loss(emb: dict[str, torch.Tensor], presence: torch.Tensor, temperature: float,
                   modalities: list[str]) -> torch.Tensor:
    """Symmetric InfoNCE between each pair of modalities over the samples that have both."""
    total = presence.new_zeros(())
    pairs = 0
    names = [m for m in MODALITIES if m in modalities]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = (presence[:, MODALITIES.index(a)] > 0.5) & (presence[:, MODALITIES.index(b)] > 0.5)
            if int(both.sum()) < 2:
                continue
            za = F.normalize(emb[a][both], dim=-1)
            zb = F.normalize(emb[b][both], dim=-1)
            logits = za @ zb.T / temperature
            target = torch.arange(za.shape[0], device=za.device)
            total = total + 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
            pairs += 1
    return total / max(1, pairs)


# --------------------------------------------------------------------------- evaluation pass
@torch.no_grad()
def predict(model: FusedModel, vocab: Vocab, ds: WindowDataset, idx: np.ndarray, device: torch.device,
            modalities: list[str] | tuple[str, ...] = MODALITIES, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Probabilities for the windows ``idx`` (sorted), seeing only ``modalities``."""
    model.eval()
    idx = np.sort(np.asarray(idx, np.int64))
    probs, events, contrib = [], [], []
    for s in range(0, len(idx), batch_size):
        feed = ds.feed(idx[s:s + batch_size], vocab, model.cfg.text.max_tokens)
        out = model(restrict(to_torch(feed, device), modalities))
        probs.append(torch.softmax(out["emotion_logits"].float(), -1).cpu().numpy())
        if "event_logits" in out:
            events.append(torch.sigmoid(out["event_logits"].float()).cpu().numpy())
        contrib.append(out["contribution"].float().cpu().numpy())
    c = len(model.cfg.emotion_labels)
    return {"index": idx, "probs": np.concatenate(probs) if probs else np.zeros((0, c), np.float32),
            "event_probs": np.concatenate(events) if events else np.zeros((len(idx), 0), np.float32),
            "labels": ds.labels[idx], "events": np.asarray(ds.arrays["events"][idx]),
            "contribution": np.concatenate(contrib) if contrib else np.zeros((0, 3), np.float32)}


# --------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_val_macro_f1: float
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    windows_per_s: float = 0.0
    stopped_early: bool = False


def train(cfg: TrainConfig, *, dataset: WindowDataset | None = None, resume: bool = False,
          progress: bool = True, device: str | None = None) -> TrainResult:
    """Train the model the config describes; returns where the checkpoints are and the history."""
    t_cfg = cfg.train
    torch.set_num_threads(max(1, t_cfg.num_threads))
    dev = pick_device(device or cfg.device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = dataset if dataset is not None else prepare_dataset(cfg, progress=progress)
    splits = make_splits(ds, cfg)
    (out / "split.json").write_text(json.dumps({"by": cfg.data.split_by, "dataset": str(ds.path),
                                                **{k: v.tolist() for k, v in splits.items()}}) + "\n")
    mcfg = model_config(cfg, ds.emotion_labels, ds.event_labels)
    if mcfg.preprocessing_params() != ds.preprocessing:
        raise TrainError(f"dataset {ds.path} was built with preprocessing {ds.preprocessing}, the model needs "
                         f"{mcfg.preprocessing_params()}; rebuild it (or point data.dataset_dir elsewhere)")
    modalities = [m for m in MODALITIES if m in cfg.model.modalities]
    last_path, best_path = out / "last.pt", out / "best.pt"
    torch.manual_seed(cfg.seed)
    start_epoch, history = 0, []
    best_f1, best_epoch, bad_epochs = -1.0, -1, 0
    if resume and last_path.exists():
        model, vocab, ckpt = load_checkpoint(last_path)
        if model.cfg.to_dict() != mcfg.to_dict():
            raise TrainError(f"resume: {last_path} holds a different model config than {cfg.model}")
        st = ckpt["extra"]["train_state"]
        start_epoch, history = int(st["epoch"]) + 1, list(st["history"])
        best_f1, best_epoch, bad_epochs = float(st["best_f1"]), int(st["best_epoch"]), int(st["bad_epochs"])
        log.info("resuming %s at epoch %d (best val macro-F1 %.4f at epoch %d)", last_path, start_epoch,
                 best_f1, best_epoch)
    else:
        if resume:
            log.info("resume: %s does not exist; starting from scratch", last_path)
        train_texts = [ds.texts[i] for i in splits["train"]]
        vocab = build_vocab(train_texts, t_cfg.vocab_size or mcfg.text.vocab_size)
        model = FusedModel(mcfg)
        ckpt = None
    model.to(dev)
    opt_cls = torch.optim.AdamW if t_cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=t_cfg.lr, weight_decay=t_cfg.weight_decay)
    if ckpt is not None:
        opt.load_state_dict(ckpt["extra"]["optimizer"])
    w_emo = float(t_cfg.loss_weights.get("emotion", 1.0))
    w_det = float(t_cfg.loss_weights.get("detection", 0.5))
    has_det = model.detection_head is not None
    train_idx = splits["train"]
    n_batches = math.ceil(len(train_idx) / t_cfg.batch_size)
    stopped_early = False
    seen, busy_s = 0, 0.0
    epoch = start_epoch - 1
    for epoch in range(start_epoch, t_cfg.epochs):
        if bad_epochs >= t_cfg.patience:
            stopped_early = True
            break
        model.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout layers
        order = rng.permutation(train_idx)
        sums = {"loss": 0.0, "ce": 0.0, "det": 0.0, "align": 0.0, "correct": 0, "n": 0}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{t_cfg.epochs}", unit="batch", leave=False)
        t0 = time.perf_counter()
        for bi in range(n_batches):
            idx = order[bi * t_cfg.batch_size:(bi + 1) * t_cfg.batch_size]
            feed = ds.feed(idx, vocab, mcfg.text.max_tokens)
            batch = restrict(to_torch(feed, dev), modalities)
            batch["presence"] = modality_dropout(batch["presence"], t_cfg.modality_dropout, gen)
            outp = model(batch)
            ce = F.cross_entropy(outp["emotion_logits"], batch["labels"])
            loss = w_emo * ce
            det = torch.zeros((), device=dev)
            if has_det:
                det = F.binary_cross_entropy_with_logits(outp["event_logits"], batch["events"])
                loss = loss + w_det * det
            align = torch.zeros((), device=dev)
            if t_cfg.alignment_weight > 0:
                align = alignment_loss(outp["embeddings"], outp["presence"], t_cfg.alignment_temperature, modalities)
                loss = loss + t_cfg.alignment_weight * align
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t_cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t_cfg.grad_clip)
            opt.step()
            n = len(idx)
            sums["loss"] += float(loss.detach()) * n
            sums["ce"] += float(ce.detach()) * n
            sums["det"] += float(det.detach()) * n
            sums["align"] += float(align.detach()) * n
            sums["correct"] += int((outp["emotion_logits"].argmax(1) == batch["labels"]).sum())
            sums["n"] += n
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / sums['n']:.3f}", acc=f"{sums['correct'] / sums['n']:.3f}")
        busy_s += time.perf_counter() - t0
        seen += sums["n"]
        if bar is not None:
            bar.close()
        rec: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": sums[k] / max(1, sums["n"])
                                                   for k in ("loss", "ce", "det", "align")},
                               "train_acc": sums["correct"] / max(1, sums["n"])}
        if (epoch + 1) % max(1, t_cfg.eval_every) == 0 or epoch + 1 == t_cfg.epochs:
            pred = predict(model, vocab, ds, splits["val"], dev, modalities)
            y_pred = pred["probs"].argmax(1)
            rec["val_acc"] = float((y_pred == pred["labels"]).mean())
            rec["val_macro_f1"] = macro_f1(pred["labels"], y_pred, len(mcfg.emotion_labels))
            if rec["val_macro_f1"] > best_f1 + t_cfg.min_delta:
                best_f1, best_epoch, bad_epochs = rec["val_macro_f1"], epoch, 0
                save_checkpoint(best_path, model.cpu(), vocab, extra={"train_config": cfg.to_dict(), "epoch": epoch,
                                                                       "val_macro_f1": best_f1})
                model.to(dev)
            else:
                bad_epochs += 1
        history.append(rec)
        state = {"epoch": epoch, "history": history, "best_f1": best_f1, "best_epoch": best_epoch,
                 "bad_epochs": bad_epochs}
        save_checkpoint(last_path, model.cpu(), vocab, extra={"train_config": cfg.to_dict(), "train_state": state,
                                                               "optimizer": opt.state_dict()})
        model.to(dev)
        log.info("epoch %d/%d: loss %.4f train acc %.3f | val acc %s macro-F1 %s%s", epoch + 1, t_cfg.epochs,
                 rec["train_loss"], rec["train_acc"], _fmt(rec.get("val_acc")), _fmt(rec.get("val_macro_f1")),
                 " (best)" if best_epoch == epoch else "")
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    else:
        stopped_early = False
    if bad_epochs >= t_cfg.patience and epoch + 1 < t_cfg.epochs:
        stopped_early = True
    if not best_path.exists():
        raise TrainError(f"training in {out} produced no best checkpoint (no validation pass ran)")
    return TrainResult(out, best_path, last_path, best_epoch, best_f1, len(history), history,
                       seen / busy_s if busy_s > 0 else 0.0, stopped_early)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
