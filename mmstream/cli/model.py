"""``mmstream model export|info|variants|build-engine``: parse arguments, call the library."""

from __future__ import annotations

import argparse
import json

from mmstream.cli.train_commands import names_missing_extra


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="export fused models to ONNX, inspect packages, build TensorRT engines")
    s = p.add_subparsers(dest="model_command", required=True)
    from mmstream.cli.train_commands import add_train_commands

    add_train_commands(s)

    ex = s.add_parser("export", help="write a checked model package (ONNX fp32 + fp16, spec, vocab, golden)")
    ex.add_argument("out", help="output directory (the model package)")
    ex.add_argument("--variant", default="fused_v1", help="registered variant (see `mmstream model variants`)")
    ex.add_argument("--checkpoint", default=None, help="trained checkpoint (model.pt); default: untrained variant")
    ex.add_argument("--vocab", default=None, help="vocab.txt for an untrained variant (default: built-in)")
    ex.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17)")
    ex.add_argument("--no-fp16", dest="fp16", action="store_false", help="skip model_fp16.onnx")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--crop", choices=("center", "face"), default=None,
                    help="frame crop in the package's preprocessing (face: Haar face detector; default: the config's)")
    ex.set_defaults(func=_export)

    info = s.add_parser("info", help="describe a model package and which backends can run it here")
    info.add_argument("package")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_info)

    var = s.add_parser("variants", help="list registered model variants")
    var.set_defaults(func=_variants)

    be = s.add_parser("build-engine", help="build (or reuse from the cache) a TensorRT engine for a package")
    be.add_argument("package")
    be.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    be.add_argument("--max-batch", type=int, default=16)
    be.add_argument("--opt-batch", type=int, default=1)
    be.add_argument("--workspace-mib", type=int, default=1024)
    be.add_argument("--cache-dir", default=None, help="engine cache (default: $MMSTREAM_ENGINE_CACHE or ~/.cache)")
    be.set_defaults(func=_build_engine)


@names_missing_extra("`mmstream model export`")
def _export(args: argparse.Namespace) -> int:
    if args.opset < 17:
        raise SystemExit("mmstream model export: --opset must be >= 17")
    from mmstream.model.export import export_from

    spec = export_from(args.out, variant=args.variant, checkpoint=args.checkpoint, vocab_path=args.vocab,
                       fp16=args.fp16, opset=args.opset, seed=args.seed, crop=args.crop)
    print(json.dumps({"package": args.out, "files": spec["files"], "parity_max_abs_diff": spec["parity_max_abs_diff"]},
                     indent=1))
    return 0


def _info(args: argparse.Namespace) -> int:
    from mmstream.runtime.info import package_info

    info = package_info(args.package)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    for key, value in info.items():
        print(f"{key:>14}: {value if not isinstance(value, (dict, list)) else json.dumps(value)}")
    return 0


def _variants(args: argparse.Namespace) -> int:
    from mmstream.model.registry import get_config, list_variants

    for name in list_variants():
        cfg = get_config(name)
        print(f"{name:<28} fusion={cfg.fusion:<15} text={cfg.text.encoder:<12} heads={','.join(cfg.heads)}")
    return 0


def _build_engine(args: argparse.Namespace) -> int:
    from mmstream.runtime.auto import create_backend
    from mmstream.runtime.package import load_package

    backend = create_backend("tensorrt", load_package(args.package), precision=args.precision,
                             max_batch=args.max_batch, opt_batch=args.opt_batch, workspace_mib=args.workspace_mib,
                             cache_dir=args.cache_dir)
    print(json.dumps(backend.info(), indent=1))
    return 0
