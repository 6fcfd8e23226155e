"""Inference runtimes: one Backend interface; ONNX Runtime, TensorRT and torch implementations.

``create_backend(name, package, ...)`` with name in {"auto", "onnxruntime", "tensorrt", "torch"}
(see :mod:`mmstream.runtime.auto`). Nothing here imports torch or tensorrt at module level.
"""
