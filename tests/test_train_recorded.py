"""Training data from a bag recorded through the pipeline: player -> ZeroMQ -> recorder -> new bag -> dataset.

The recorded bag's log times are the wall clock of the recording, not the original stamps, so the
dataset builder follows the message stamps (clock "auto"); the windows, labels and pixels must be
those of the original bag.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mmstream.train.dataset import Recording, build_dataset
from tests.train_support import TINY_MODEL, tiny_synth

SYNC = {"window_s": 1.0, "hop_s": 1.0, "frames_per_window": 2}


def _pre() -> dict:
    from mmstream.model.config import FusedModelConfig

    return FusedModelConfig.from_dict(TINY_MODEL).preprocessing_params()


@pytest.mark.timeout(90)
def test_dataset_from_a_bag_recorded_through_the_pipeline(tmp_path: Path, spawn) -> None:  # noqa: ANN001
    manifest = tiny_synth(tmp_path / "synth", sessions=1, segments=6)
    original = tmp_path / "synth" / "sessions" / "spk00.mcap"
    labels = tmp_path / "synth" / "labels" / "spk00.csv"
    recorded = tmp_path / "recorded.mcap"
    rec = spawn([sys.executable, "-m", "mmstream.cli", "bag", "record", "-o", str(recorded), "/camera/image",
                 "/microphone/audio", "/text/utterance", "--no-progress"])
    play = spawn([sys.executable, "-m", "mmstream.cli", "bag", "play", str(original), "-r", "4", "--wait-for", "1"])
    out, _ = play.communicate(timeout=60)
    assert play.returncode == 0, out
    rec.send_signal(2)
    log, _ = rec.communicate(timeout=20)
    assert recorded.exists(), log
    assert manifest.exists()
    a = build_dataset([Recording(str(original), str(labels), "spk00")], tmp_path / "ds_a", sync=SYNC,
                      preprocessing=_pre())
    b = build_dataset([Recording(str(recorded), str(labels), "spk00")], tmp_path / "ds_b", sync=SYNC,
                      preprocessing=_pre())
    sa = {int(s[0]): i for i, s in enumerate(np.asarray(a.arrays["stamps"]))}
    sb = {int(s[0]): i for i, s in enumerate(np.asarray(b.arrays["stamps"]))}
    assert set(sb) == set(sa), log  # every window again, none invented
    for start, i in sa.items():
        j = sb[start]
        assert a.labels[i] == b.labels[j]
        assert a.texts[i] == b.texts[j]
        np.testing.assert_array_equal(a.arrays["frame_mask"][i], b.arrays["frame_mask"][j])
        np.testing.assert_allclose(a.arrays["frames"][i], b.arrays["frames"][j], atol=1e-6)
        np.testing.assert_allclose(a.arrays["logmel"][i], b.arrays["logmel"][j], atol=1e-4)
