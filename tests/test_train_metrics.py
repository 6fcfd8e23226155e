"""Metrics against hand-computed and brute-force values."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mmstream.train import metrics as M


def test_classification_report_by_hand() -> None:
    y = [0, 0, 1, 1, 2, 2]
    probs = np.array([[.8, .1, .1], [.3, .6, .1], [.1, .8, .1], [.2, .7, .1], [.1, .2, .7], [.5, .2, .3]])
    r = M.classification_report(y, probs, ["a", "b", "c"])
    assert r["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r["accuracy"] == 4 / 6
    assert r["per_class"]["a"]["precision"] == 0.5 and r["per_class"]["a"]["recall"] == 0.5
    assert abs(r["per_class"]["b"]["precision"] - 2 / 3) < 1e-12 and r["per_class"]["b"]["recall"] == 1.0
    f1 = [0.5, 0.8, 2 * 1 * 0.5 / 1.5]
    assert abs(r["macro_f1"] - np.mean(f1)) < 1e-12
    text = M.confusion_text(r["confusion"], ["a", "b", "c"])
    assert text.splitlines()[2].split() == ["b", "0", "2", "0"]


def test_perfectly_calibrated_has_zero_ece_and_overconfident_has_large() -> None:
    probs = np.array([[1.0, 0.0]] * 10)
    assert M.calibration(probs, [0] * 10)["ece"] == 0.0
    assert abs(M.calibration(probs, [0] * 5 + [1] * 5)["ece"] - 0.5) < 1e-12


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_auc_equals_pairwise_probability(pairs: list[tuple[bool, int]]) -> None:
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], float)
    auc = M.roc_auc(y, s)
    if y.all() or (~y).all():
        assert auc is None
        return
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(s[y], s[~y])]
    assert abs(auc - np.mean(wins)) < 1e-12
    fpr, tpr = M.roc_curve(y, s)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert abs(np.trapezoid(tpr, fpr) - auc) < 1e-9  # area under the drawn curve is the AUC


def test_detection_report_and_plots(tmp_path) -> None:
    targets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], float)
    scores = np.array([[.9, .2], [.8, .7], [.3, .6], [.1, .4]])
    det = M.detection_report(targets, scores, ["face", "speech"])
    assert det["events"]["face"]["auc"] == 1.0 and det["events"]["speech"]["auc"] == 1.0
    r = M.classification_report([0, 1], np.array([[.7, .3], [.4, .6]]), ["x", "y"])
    for fn, args in ((M.plot_roc, (det,)), (M.plot_confusion, (r["confusion"], ["x", "y"])),
                     (M.plot_reliability, (r["calibration"],))):
        p = fn(*args, tmp_path / f"{fn.__name__}.png")
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
