"""mmstream: real-time multimodal perception as ROS-style streaming nodes over ZeroMQ."""

import os as _os

# On 2 shared cores, BLAS worker threads cost far more than they give (log-mel p99 went from
# 1 ms to 15 ms): one thread unless the user asked otherwise. Must be set before numpy loads.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
