"""Worker processes that never outlive the process that started them."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

from pipeline.io import pid_alive

PARENT_POLL_S = 1.0  # how often a worker checks that its parent is alive where prctl is unavailable

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Make this worker exit when process ``parent`` dies, even by ``kill -9``.

    For a process pool's initializer: ``initializer=die_with_parent, initargs=(os.getpid(),)``.

    Without this, the workers of a killed build block forever on the task queue they share
    with it. On Linux, when ``parent`` forked or spawned this worker itself, the kernel sends
    SIGKILL on its death (prctl PR_SET_PDEATHSIG); elsewhere, if prctl fails, or when a
    fork server started the worker (its parent is then not ``parent``), a daemon thread polls
    every `PARENT_POLL_S` and ends the process once ``parent`` is gone.
    """
    direct = os.getppid() == parent
    if direct and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
        if armed:
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            return

    def parent_alive() -> bool:
        # A dead parent's children are re-parented, so a direct child sees its parent id change.
        return os.getppid() == parent if direct else pid_alive(parent)

    def watch() -> None:
        while parent_alive():
            threading.Event().wait(PARENT_POLL_S)
        os._exit(1)  # nothing to clean up: a part is written whole (temp, then rename) or not at all

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
