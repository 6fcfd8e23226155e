"""Batch perception over recorded bags: the graph's synchronizer and model, in-process, on many bags.

:mod:`graph_clock` cuts a bag's windows exactly as ``bag play`` + the synchronizer node do (same
player ticks, same node clock and timer); :mod:`task` runs a bag (or a time range of a long one)
through an :class:`~mmstream.runtime.pipeline.InferencePipeline`; :mod:`executors` runs tasks in
this process, a local process pool or on Ray; :mod:`runner` ties a run together (outputs, resume,
report). See docs/process.md.
"""

from mmstream.process.config import ProcessConfig, sync_config
from mmstream.process.graph_clock import GraphReplay, graph_windows
from mmstream.process.runner import RunSummary, process_bags

__all__ = ["ProcessConfig", "sync_config", "GraphReplay", "graph_windows", "RunSummary", "process_bags"]
