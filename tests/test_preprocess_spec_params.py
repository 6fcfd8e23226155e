"""model.json preprocessing params parsed into frozen dataclasses: typos, missing keys and wrong types are
errors naming the file, the key and the keys allowed (like launch files)."""

from __future__ import annotations

import copy
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from mmstream.errors import ModelError
from mmstream.model.config import FusedModelConfig
from mmstream.preprocess import get_preprocessor
from mmstream.preprocess.fused_v1 import FusedV1Params, VideoParams
from mmstream.preprocess.logmel import LogMelParams
from mmstream.preprocess.pretrained_default import PretrainedDefaultParams
from mmstream.preprocess.spec_params import parse_params


def _fused_spec() -> dict:
    return {"name": "t", "preprocessing": {"kind": "fused_v1", "params": FusedModelConfig().preprocessing_params()}}


def test_fused_v1_params_round_trip_from_the_model_config() -> None:
    p = parse_params(FusedV1Params, FusedModelConfig().preprocessing_params(), file="model.json")
    assert p.video == VideoParams(frames=4, size=64, mean=0.5, std=0.25, crop="center")
    assert p.audio == LogMelParams() and p.text.max_tokens == 32
    with pytest.raises(FrozenInstanceError):
        p.video.size = 3  # type: ignore[misc]


@pytest.mark.parametrize("edit, match", [
    (lambda p: p["video"].update(crpo="face"),
     r"model.json: preprocessing.params.video: unknown key\(s\) \['crpo'\]; allowed: \['crop', 'frames', "),
    (lambda p: p["audio"].update(n_mel=80), r"preprocessing.params.audio: unknown key\(s\) \['n_mel'\]"),
    (lambda p: p.update(txt={}), r"preprocessing.params: unknown key\(s\) \['txt'\]; allowed: \['audio', 'text', "),
    (lambda p: p["text"].pop("max_tokens"), r"preprocessing.params.text: missing key 'max_tokens'"),
    (lambda p: p["video"].update(size="64"), r"preprocessing.params.video.size is '64' \(str\); expected int"),
    (lambda p: p["video"].update(frames=True), r"video.frames is True \(bool\); expected int"),
    (lambda p: p["video"].update(crop="eyes"), r"video crop 'eyes': expected 'center' or 'face'"),
    (lambda p: p.update(video=[1]), r"preprocessing.params.video must be a map, got list"),
])
def test_fused_v1_spec_mistakes_name_file_and_key(tmp_path: Path, edit, match: str) -> None:  # noqa: ANN001
    spec = _fused_spec()
    edit(spec["preprocessing"]["params"])
    with pytest.raises(ModelError, match=match) as info:
        get_preprocessor(spec, tmp_path)  # the params are parsed before the vocabulary is looked for
    assert str(tmp_path / "model.json") in str(info.value)


def test_pretrained_default_params(tmp_path: Path) -> None:
    from mmstream.pretrained.default_model import model_spec

    spec = model_spec("key")
    params = parse_params(PretrainedDefaultParams, spec["preprocessing"]["params"], file="model.json")
    assert params.face_slots == 4 and params.empty_rescan_every == 2 and params.text_encoder_dir == "../text_encoder"
    bad = copy.deepcopy(spec)
    bad["preprocessing"]["params"]["redetect_evry"] = 5
    with pytest.raises(ModelError, match=r"model.json: preprocessing.params: unknown key\(s\) \['redetect_evry'\]; "
                                         r"allowed: \[.*'redetect_every'"):
        get_preprocessor(bad, tmp_path)
    bad = copy.deepcopy(spec)
    bad["preprocessing"]["params"]["sample_rate_hz"] = 8000
    with pytest.raises(ModelError, match=r"sample_rate_hz 8000: the audio branch runs at 16000"):
        get_preprocessor(bad, tmp_path)
    assert parse_params(PretrainedDefaultParams, None, file="m.json") == PretrainedDefaultParams()  # all defaults
