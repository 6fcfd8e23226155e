"""A model package on disk: model.onnx + model.json (+ vocab.txt, model.pt, model_fp16.onnx, golden.npz).

``load_package(dir)`` validates the spec and the files it names and raises ModelError naming the
file and what was expected. numpy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.errors import ModelError

SPEC_FILE = "model.json"
REQUIRED_KEYS = ("name", "inputs", "outputs", "preprocessing")
DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_,
          "uint8": np.uint8}


@dataclass
class ModelPackage:
    directory: Path
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def file(self, key: str, default: str) -> Path:
        return self.directory / self.spec.get("files", {}).get(key, default)

    @property
    def onnx_path(self) -> Path:
        return self.file("onnx", "model.onnx")

    @property
    def onnx_fp16_path(self) -> Path | None:
        p = self.file("onnx_fp16", "model_fp16.onnx")
        return p if p.is_file() else None

    @property
    def checkpoint_path(self) -> Path | None:
        p = self.file("checkpoint", "model.pt")
        return p if p.is_file() else None

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.spec["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.spec["outputs"]]

    def dummy_feed(self, batch: int) -> dict[str, np.ndarray]:
        """Zeros of the declared shapes (dynamic axes -> ``batch``) and dtypes."""
        return {i["name"]: np.zeros([batch if isinstance(d, str) or d in (-1, None) else int(d) for d in i["shape"]],
                                    DTYPES[i["dtype"]]) for i in self.spec["inputs"]}

    def golden(self) -> dict[str, dict[str, dict[str, np.ndarray]]] | None:
        """{case: {"in": feed, "out": expected}} from golden.npz, or None if the package has none."""
        path = self.file("golden", "golden.npz")
        if not path.is_file():
            return None
        cases: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        with np.load(path) as z:
            for key in z.files:
                case, kind, name = key.split("/", 2)
                cases.setdefault(case, {"in": {}, "out": {}})[kind][name] = z[key]
        return cases


def load_package(directory: str | Path) -> ModelPackage:
    d = Path(directory)
    if not d.is_dir():
        raise ModelError(f"model package {d} does not exist (expected a directory with {SPEC_FILE} and model.onnx)")
    spec_path = d / SPEC_FILE
    if not spec_path.is_file():
        raise ModelError(f"model package {d}: {spec_path} is missing")
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{spec_path} is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise ModelError(f"{spec_path}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise ModelError(f"{spec_path}: missing keys {missing} (expected {list(REQUIRED_KEYS)})")
    for kind in ("inputs", "outputs"):
        for i, item in enumerate(spec[kind]):
            if not isinstance(item, dict) or not {"name", "dtype", "shape"} <= item.keys():
                raise ModelError(f"{spec_path}: {kind}[{i}] must have name, dtype, shape")
            if item["dtype"] not in DTYPES:
                raise ModelError(f"{spec_path}: {kind}[{i}] {item['name']!r} dtype {item['dtype']!r} "
                                 f"(expected one of {sorted(DTYPES)})")
    pkg = ModelPackage(d, spec)
    if not pkg.onnx_path.is_file():
        raise ModelError(f"model package {d}: {pkg.onnx_path} is missing")
    return pkg


def check_io(package: ModelPackage, input_shapes: dict[str, list[Any]], output_names: list[str], where: str) -> None:
    """ModelError naming ``where`` (the model file) if the runtime's inputs/outputs differ from the spec."""
    spec_in = {i["name"]: i for i in package.spec["inputs"]}
    if set(spec_in) != set(input_shapes):
        raise ModelError(f"{where}: inputs {sorted(input_shapes)} do not match {SPEC_FILE} inputs {sorted(spec_in)}")
    for name, shape in input_shapes.items():
        want = spec_in[name]["shape"]
        if len(shape) != len(want):
            raise ModelError(f"{where}: input {name!r} has rank {len(shape)}, {SPEC_FILE} says shape {want}")
        for got_d, want_d in zip(shape, want):
            if isinstance(want_d, int) and isinstance(got_d, int) and got_d >= 0 and got_d != want_d:
                raise ModelError(f"{where}: input {name!r} has shape {shape}, {SPEC_FILE} says {want}")
    missing = set(package.output_names) - set(output_names)
    if missing:
        raise ModelError(f"{where}: outputs {sorted(output_names)} lack {sorted(missing)} named in {SPEC_FILE}")
