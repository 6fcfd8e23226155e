"""Training and evaluation from recordings.

labels (interval label files) -> dataset (bags + labels through the live synchronizer and the live
preprocessing, cached as memory-mapped .npy) -> splits (by session/speaker) -> trainer -> evaluate
(metrics, fusion comparison, report). importer and synthetic make bags from clip folders and from
a generated benchmark. Only trainer and evaluate import torch.
"""
