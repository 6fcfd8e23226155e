"""The fused multimodal model (torch): config, encoders, fusion, heads, variants, checkpoints, export.

Only :mod:`mmstream.model.config` is importable without torch; import the other modules directly.
"""
