"""Classification metrics (numpy only) and their plots (matplotlib, Agg backend).

Single-label heads: accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix,
expected calibration error (equal-width confidence bins) with its reliability table.
Multi-label detection heads: per-event ROC curve and AUC (rank statistic, ties counted half),
average precision at 0.5, and ECE of the per-event probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """C×C int64: row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    true = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true.astype(np.int64)}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes that occur in y_true or y_pred (absent classes do not count)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    pc = per_class(cm)
    seen = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(pc["f1"][seen].mean()) if seen.any() else 0.0


def calibration(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> dict:
    """ECE of the top-class confidence: sum over bins of |accuracy - confidence| × bin share."""
    probs = np.asarray(probs, np.float64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    return _ece(conf, correct, n_bins)


def _ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> dict:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    ece = 0.0
    n = max(1, conf.size)
    for b in range(n_bins):
        m = idx == b
        if not m.any():
            bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": 0, "accuracy": None,
                         "confidence": None})
            continue
        acc, cf = float(correct[m].mean()), float(conf[m].mean())
        ece += abs(acc - cf) * m.sum() / n
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(m.sum()),
                     "accuracy": acc, "confidence": cf})
    return {"ece": float(ece), "bins": bins}


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates), from (0,0) to (1,1), one point per distinct score."""
    y = np.asarray(y_true, bool)
    s = np.asarray(scores, np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], y.size - 1] if y.size else np.zeros(0, int)
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    p, n = max(1, int(y.sum())), max(1, int((~y).sum()))
    return np.r_[0.0, fps / n], np.r_[0.0, tps / p]


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Probability a random positive outscores a random negative (ties half); None if one class is absent."""
    y = np.asarray(y_true, bool)
    s = np.asarray(scores, np.float64)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def classification_report(y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str], n_bins: int = 10) -> dict:
    """Everything for a single-label head, JSON-ready."""
    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float64)
    y_pred = probs.argmax(axis=1) if probs.size else np.zeros(0, np.int64)
    c = len(labels)
    cm = confusion_matrix(y_true, y_pred, c)
    pc = per_class(cm)
    return {
        "n": int(y_true.size),
        "accuracy": float((y_true == y_pred).mean()) if y_true.size else 0.0,
        "macro_f1": macro_f1(y_true, y_pred, c),
        "per_class": {lab: {k: (int(v[i]) if k == "support" else float(v[i])) for k, v in pc.items()}
                      for i, lab in enumerate(labels)},
        "confusion": cm.tolist(),
        "labels": list(labels),
        "calibration": calibration(probs, y_true, n_bins) if y_true.size else {"ece": 0.0, "bins": []},
    }


def detection_report(targets: np.ndarray, scores: np.ndarray, labels: Sequence[str], n_bins: int = 10) -> dict:
    """Per-event AUC, accuracy at 0.5 and ECE, plus the ROC points (for plotting)."""
    targets = np.asarray(targets, np.float64)
    scores = np.asarray(scores, np.float64)
    out: dict = {"events": {}}
    aucs = []
    for j, lab in enumerate(labels):
        y, s = targets[:, j] > 0.5, scores[:, j]
        auc = roc_auc(y, s)
        fpr, tpr = roc_curve(y, s)
        conf = np.where(s >= 0.5, s, 1 - s)
        correct = ((s >= 0.5) == y).astype(np.float64)
        out["events"][lab] = {"auc": auc, "accuracy": float(correct.mean()) if y.size else 0.0,
                              "positives": int(y.sum()), "n": int(y.size),
                              "ece": _ece(conf, correct, n_bins)["ece"] if y.size else 0.0,
                              "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}}
        if auc is not None:
            aucs.append(auc)
    out["mean_auc"] = float(np.mean(aucs)) if aucs else None
    return out


def confusion_text(cm: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """Fixed-width text table (rows true, columns predicted)."""
    w = max(6, *(len(lab) for lab in labels)) + 1
    head = "true\\pred".ljust(w) + "".join(lab[:w - 1].rjust(w) for lab in labels)
    rows = [lab.ljust(w) + "".join(str(int(v)).rjust(w) for v in row) for lab, row in zip(labels, cm)]
    return "\n".join([head, *rows])


# --------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:  # noqa: ANN001
    """Lay out, write (PNG at 110 dpi) and close a matplotlib figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return Path(path)


def plot_confusion(cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    plt = _plt()
    cm = np.asarray(cm)
    norm = cm / np.maximum(1, cm.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(labels), 1.0 + 0.7 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix")
    return save_figure(fig, path)


def plot_roc(det: dict, path: str | Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for lab, ev in det["events"].items():
        auc = ev["auc"]
        ax.plot(ev["roc"]["fpr"], ev["roc"]["tpr"], label=f"{lab} (AUC {auc:.3f})" if auc is not None else lab)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, detection head")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_reliability(cal: dict, path: str | Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    bins = [b for b in cal["bins"] if b["count"]]
    centers = [(b["lo"] + b["hi"]) / 2 for b in bins]
    ax.bar(centers, [b["accuracy"] for b in bins], width=0.09, alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {cal['ece']:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)
