"""Worker processes on one listening socket, kept at full strength: a worker that dies (the OOM killer, a crash) is
replaced, and SIGTERM or SIGINT is passed on to every worker, which finishes its requests in flight."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

# More deaths than workers within this window means they cannot start (a bad model file, a taken port): give up
# rather than restart them for ever.
CRASH_WINDOW_SECONDS = 60.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # passed on to the workers; each finishes its requests in flight
log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """Bound, not yet listening: connections are refused, not queued, until a worker has its model and listens."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def run_workers(work: Callable[[], None], count: int, sock: socket.socket) -> int:
    """Run `work` in `count` processes that inherit `sock`, replacing any that exits by itself, until SIGTERM or
    SIGINT. Returns 0 if every worker stopped cleanly when told, 1 if they kept dying and the supervisor gave up."""
    workers = _Workers(work, count)
    previous = {signum: signal.signal(signum, workers.on_signal) for signum in STOP_SIGNALS}
    try:
        for slot in range(count):
            workers.start(slot)
        while not workers.told.is_set():
            multiprocessing.connection.wait([p.sentinel for p in workers.processes.values()], timeout=1.0)
            workers.replace_dead()
        for process in workers.processes.values():
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    return 0 if not workers.gave_up and all(p.exitcode == 0 for p in workers.processes.values()) else 1


class _Workers:
    """The worker processes by slot, and the recent deaths that tell a worker's crash from workers that cannot start."""

    def __init__(self, work: Callable[[], None], count: int) -> None:
        # fork: the workers inherit the bound socket; this process has loaded no model and started no Python thread
        # (importing numpy and onnxruntime starts one native thread each, which fork does not copy).
        self.context = multiprocessing.get_context("fork")
        self.work = work
        self.count = count
        self.told = threading.Event()
        self.processes: dict[int, multiprocessing.Process] = {}
        self.deaths: list[float] = []
        self.gave_up = False

    def start(self, slot: int) -> None:
        process = self.context.Process(target=_worker, args=(self.work, os.getpid()), name=f"worker-{slot}")
        # Blocked across the fork: a signal arriving in the child before _worker resets the handlers would run this
        # supervisor's handler there, and its exception would unwind the child into the supervisor's own loop (a
        # second supervisor). The child unblocks them once they are its own; here they are delivered after start.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        self.processes[slot] = process

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def on_signal(self, *_: object) -> None:
        self.told.set()
        self.stop_all()

    def replace_dead(self) -> None:
        """Start a new worker in the slot of each that exited by itself; give up, and stop the others, when more than
        `count` died within CRASH_WINDOW_SECONDS."""
        for slot, process in list(self.processes.items()):
            if process.is_alive() or self.told.is_set():
                continue
            now = time.monotonic()
            self.deaths[:] = [t for t in self.deaths if now - t < CRASH_WINDOW_SECONDS] + [now]
            if len(self.deaths) > self.count:
                log.error("workers keep exiting (%d in %.0f s); stopping", len(self.deaths), CRASH_WINDOW_SECONDS)
                self.gave_up = True
                self.told.set()
                self.stop_all()
                return
            log.error("worker %d (pid %d) exited with %s; starting a new one", slot, process.pid, process.exitcode)
            self.start(slot)


def _worker(work: Callable[[], None], supervisor: int) -> None:
    # The handlers inherited from the parent would signal the other workers. Until run_until_terminated installs its
    # own, a signal ends a worker that has nothing in flight yet.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the supervisor across the fork
    _terminate_with(supervisor)
    work()


def _terminate_with(supervisor: int) -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) must not leave its workers serving the port: on Linux
    the kernel sends each worker SIGTERM when its parent dies, and it finishes its requests in flight."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
