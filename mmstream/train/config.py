"""The training configuration (one YAML file): data, model, training and evaluation sections.

See config/train_example.yaml for every key with its default. Unknown keys are errors naming the
section and the key, so a typo never silently trains something else.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mmstream.errors import MmstreamError
from mmstream.messages import MODALITIES


class TrainConfigError(MmstreamError):
    """A training config file is missing, malformed, or names unknown keys."""


@dataclass
class DataConfig:
    manifest: str = ""                    # manifest.json: {"recordings": [{bag, labels, session, speaker}]}
    recordings: list = field(default_factory=list)  # or inline: [{bag, labels, session?, speaker?}]
    dataset_dir: str = ""                 # cache dir (default <out_dir>/dataset)
    sync: dict = field(default_factory=lambda: {"window_s": 1.0, "hop_s": 0.5, "frames_per_window": 4})
    min_overlap: float = 0.5
    emotion_labels: list = field(default_factory=list)  # default: the labels the files use, sorted
    event_labels: list = field(default_factory=list)    # events task labels -> detection head
    topics: dict = field(default_factory=dict)          # modality -> topic (after topic_map)
    topic_map: dict = field(default_factory=dict)       # bag topic -> our topic / modality
    clock: str = "auto"                   # windows on the bag's log times ("log"), header stamps ("stamp"), or auto
    split_by: str = "speaker"             # "speaker" or "session" (never window)
    split_fractions: list = field(default_factory=lambda: [0.7, 0.15, 0.15])
    split_seed: int = 0


@dataclass
class ModelSection:
    variant: str = "fused_v1"
    overrides: dict = field(default_factory=dict)       # FusedModelConfig fields (nested dicts for video/audio/text)
    modalities: list = field(default_factory=lambda: list(MODALITIES))  # the model only ever sees these


@dataclass
class TrainSection:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    optimizer: str = "adamw"              # "adamw" or "adam"
    loss_weights: dict = field(default_factory=lambda: {"emotion": 1.0, "detection": 0.5})
    modality_dropout: float = 0.3         # per sample, per present modality (one always kept)
    alignment_weight: float = 0.0         # cross-modal contrastive alignment loss (InfoNCE); 0 = off
    alignment_temperature: float = 0.1
    patience: int = 5                     # early stopping on val macro-F1 (epochs without improvement)
    min_delta: float = 0.0
    grad_clip: float = 1.0
    vocab_size: int = 0                   # 0 = the model's text.vocab_size
    num_threads: int = 1                  # torch CPU threads (1: no spin-waiting on a shared machine)
    eval_every: int = 1


@dataclass
class EvalSection:
    fusions: list = field(default_factory=lambda: ["concat", "additive", "multiplicative", "gated", "attention"])
    trained_subsets: bool = True          # also train single-modality and pair models (baseline fusion)
    baseline_fusion: str = "gated"
    dropout_ablation: bool = True         # also train the full model without modality dropout


@dataclass
class TrainConfig:
    out_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"                  # "auto", "cpu", "cuda", "cuda:1"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def copy(self) -> "TrainConfig":
        return copy.deepcopy(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], base_dir: str | Path | None = None) -> "TrainConfig":
        d = dict(d or {})
        subs = {"data": DataConfig, "model": ModelSection, "train": TrainSection, "eval": EvalSection}
        kw: dict[str, Any] = {}
        known = {f.name for f in fields(cls)}
        for k, v in d.items():
            if k not in known:
                raise TrainConfigError(f"training config: unknown key {k!r} (expected some of {sorted(known)})")
            if k in subs:
                kw[k] = _section(subs[k], v or {}, k)
            else:
                kw[k] = v
        cfg = cls(**kw)
        if base_dir is not None:
            cfg.resolve_paths(Path(base_dir))
        cfg.validate()
        return cfg

    def resolve_paths(self, base: Path) -> None:
        """Relative paths in the file are relative to the file's directory."""
        def fix(p: str) -> str:
            return str((base / p).resolve()) if p and not Path(p).is_absolute() else p

        self.out_dir = fix(self.out_dir)
        self.data.manifest = fix(self.data.manifest)
        self.data.dataset_dir = fix(self.data.dataset_dir)
        for r in self.data.recordings:
            for k in ("bag", "labels"):
                if k in r:
                    r[k] = fix(r[k])

    def validate(self) -> None:
        bad = [m for m in self.model.modalities if m not in MODALITIES]
        if bad or not self.model.modalities:
            raise TrainConfigError(f"model.modalities {self.model.modalities}: expected a non-empty subset "
                                   f"of {MODALITIES}")
        if self.data.split_by not in ("speaker", "session"):
            raise TrainConfigError(f"data.split_by {self.data.split_by!r}: expected 'speaker' or 'session'")
        if self.train.optimizer not in ("adamw", "adam"):
            raise TrainConfigError(f"train.optimizer {self.train.optimizer!r}: expected 'adamw' or 'adam'")
        if not 0.0 <= self.train.modality_dropout < 1.0:
            raise TrainConfigError(f"train.modality_dropout {self.train.modality_dropout} must be in [0, 1)")
        if not self.data.manifest and not self.data.recordings:
            raise TrainConfigError("data: give a manifest or a list of recordings")


def _section(cls: type, d: dict[str, Any], where: str) -> Any:
    if not isinstance(d, dict):
        raise TrainConfigError(f"training config: section {where!r} must be a map")
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise TrainConfigError(f"training config section {where!r}: unknown keys {sorted(unknown)} "
                               f"(expected some of {sorted(names)})")
    return cls(**d)


def load_config(path: str | Path) -> TrainConfig:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"training config {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"training config {path}: not YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise TrainConfigError(f"training config {path}: expected a map at the top")
    try:
        return TrainConfig.from_dict(doc, base_dir=path.parent)
    except TypeError as exc:
        raise TrainConfigError(f"training config {path}: {exc}") from exc
