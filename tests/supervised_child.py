"""A tiny process for the supervisor tests: no node runtime, behaviour chosen by environment variables.

CHILD_MODE: ``exit`` (print, then exit with CHILD_CODE), ``serve`` (print, then wait for SIGINT and
exit 0), ``stubborn`` (ignore SIGINT, and SIGTERM too with CHILD_IGNORE_TERM=1, then wait).
CHILD_LOG: a file each start appends its pid to. CHILD_READY_FIFO: once ready, open this FIFO for
writing (which waits for a reader); CHILD_AWAIT_FIFO: before exiting, read this FIFO (which waits
for the writer), so one child can end only after another is ready. The supervisor's arguments
are printed as given.
"""

from __future__ import annotations

import os
import signal
import sys

PARAMS: list = []  # the launch file parser wants a PARAMS list


def main() -> int:
    mode = os.environ.get("CHILD_MODE", "exit")
    if os.environ.get("CHILD_LOG"):
        with open(os.environ["CHILD_LOG"], "a") as f:
            f.write(f"{os.getpid()}\n")
    if mode == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.environ.get("CHILD_IGNORE_TERM") == "1":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "serve":  # SIGINT stays pending until sigwait takes it: no window where it could be missed
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    print(f"child up pid={os.getpid()} argv={' '.join(sys.argv[1:])} env={os.environ.get('CHILD_TAG', '')}",
          flush=True)
    if os.environ.get("CHILD_READY_FIFO"):
        with open(os.environ["CHILD_READY_FIFO"], "w") as fifo:
            fifo.write("ready\n")
    if mode == "exit":
        if os.environ.get("CHILD_AWAIT_FIFO"):
            with open(os.environ["CHILD_AWAIT_FIFO"]) as fifo:
                fifo.read()
        return int(os.environ.get("CHILD_CODE", "0"))
    if mode == "serve":
        signal.sigwait({signal.SIGINT})
        print("child got SIGINT", flush=True)
        return 0
    while True:  # stubborn: only a signal it does not ignore ends it
        signal.pause()


if __name__ == "__main__":
    raise SystemExit(main())
