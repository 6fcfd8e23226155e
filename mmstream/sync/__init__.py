"""Time alignment of streams: the windowed join and message_filters-style pairing.

Pure objects (no sockets, no threads); the synchronizer node wraps them.
"""

from mmstream.sync.config import SyncConfig
from mmstream.sync.pairing import ApproximateTimeSynchronizer, ExactTimeSynchronizer
from mmstream.sync.stats import SyncStats
from mmstream.sync.window_sync import WindowSynchronizer

__all__ = ["ApproximateTimeSynchronizer", "ExactTimeSynchronizer", "SyncConfig", "SyncStats",
           "WindowSynchronizer"]
