"""Evaluation reports (files exist and parse), the fusion comparison, and the CLI commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from mmstream.cli.train_commands import add_train_commands
from mmstream.train.evaluate import compare, evaluate_checkpoint
from mmstream.train.trainer import train
from tests.train_support import tiny_config, tiny_synth

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_synth(tmp_path_factory.mktemp("synth"), sessions=6, segments=6)


def test_eval_report_files_exist_and_parse(manifest: Path, tmp_path: Path) -> None:
    res = train(tiny_config(manifest, tmp_path / "run", epochs=2), progress=False)
    out = tmp_path / "eval"
    result = evaluate_checkpoint(res.best_checkpoint, manifest.parent / "ds", out, split="test")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["emotion"]["n"] == result["emotion"]["n"] > 0
    cm = metrics["emotion"]["confusion"]
    assert sum(map(sum, cm)) == metrics["emotion"]["n"]
    assert set(metrics["detection"]["events"]) == {"face_present", "speech_present"}
    for png in ("confusion.png", "reliability.png", "roc.png"):
        assert (out / png).read_bytes()[:8] == PNG
    text = (out / "confusion.txt").read_text().splitlines()
    assert text[0].split()[1:] == ["angry", "happy", "sad", "neutral"]
    assert [int(v) for v in text[1].split()[1:]] == cm[0]
    report = (out / "report.md").read_text()
    assert "| macro-F1 |" in report and "![confusion](confusion.png)" in report and "AUC" in report
    # removing modalities at test time is honoured
    audio_only = evaluate_checkpoint(res.best_checkpoint, manifest.parent / "ds", tmp_path / "eval_a",
                                     split="test", modalities=["audio"])
    assert audio_only["mean_contribution"]["video"] == 0 and audio_only["mean_contribution"]["text"] == 0


def test_compare_writes_one_table_one_plot_and_exports(manifest: Path, tmp_path: Path) -> None:
    cfg = tiny_config(manifest, tmp_path / "cmp", epochs=2)
    cfg.eval.dropout_ablation = True
    doc = compare(cfg, tmp_path / "cmp" / "compare", progress=False)
    out = tmp_path / "cmp" / "compare"
    report = (out / "report.md").read_text()
    table = [ln for ln in report.splitlines() if ln.startswith("| ")]
    assert table[0].startswith("| model | V | A | T | V+A | V+T | A+T | V+A+T |")
    assert len(table) == 1 + 2  # header + gated(all three) + the no-dropout ablation
    assert (out / "comparison.png").read_bytes()[:8] == PNG
    assert (out / "best" / "report.md").exists()
    j = json.loads((out / "comparison.json").read_text())
    assert {"best_fused", "best_single", "one_removed_mean_accuracy"} <= set(j["findings"])
    assert len(j["rows"][0]["cells"]) == 7
    parity = doc["export"]["parity_max_abs_diff"]["fp32"]
    assert max(parity.values()) <= 1e-4
    assert doc["export"]["test_windows_max_abs_diff"] <= 1e-4
    assert (out / "model" / "model.onnx").exists()


def test_cli_dataset_train_eval(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config(manifest, tmp_path / "cli", epochs=1).to_dict()
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    ap = argparse.ArgumentParser()
    add_train_commands(ap.add_subparsers(dest="model_command", required=True))

    def run(*argv: str) -> dict:
        args = ap.parse_args(list(argv))
        assert args.func(args) == 0
        return json.loads(capsys.readouterr().out)

    built = run("dataset", "build", "--config", str(cfg_path), "--no-progress")
    assert built["windows"] > 0 and built["labels"] == ["angry", "happy", "sad", "neutral"]
    trained = run("train", "--config", str(cfg_path), "--no-progress", "--device", "cpu")
    assert Path(trained["best_checkpoint"]).exists()
    ev = run("eval", "--checkpoint", trained["best_checkpoint"], "--dataset", built["dataset"], "--split", "all",
             "--out", str(tmp_path / "ev"))
    assert ev["n"] == built["windows"] and (tmp_path / "ev" / "report.md").exists()
