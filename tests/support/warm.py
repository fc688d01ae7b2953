"""Seeing from outside that `pycni serve` took requests."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path


def stop_server(proc: subprocess.Popen) -> bool:
    """SIGTERM a `pycni serve`, SIGKILL it after 10 s; whether SIGTERM was enough."""
    clean = True
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            clean = False
    if proc.stderr:
        proc.stderr.close()
    return clean


class WorkerMoves(threading.Thread):
    """Counts the requests the server's workers take: a worker joins its caller's network namespace
    for each request and returns to the server's afterwards (a worker may serve several), so every
    move out of the server's namespace seen in /proc is one request. /proc is sampled every 2 ms,
    so requests shorter than that can be missed: the count is a lower bound."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.home = os.stat(f"/proc/{pid}/ns/net").st_ino
        self.where: dict[str, int] = {}
        self.served = 0
        self.done = threading.Event()

    def run(self) -> None:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        while not self.done.wait(0.002):
            try:
                children = path.read_text().split()
            except OSError:
                return
            for child in children:
                try:
                    ino = os.stat(f"/proc/{child}/ns/net").st_ino
                except OSError:
                    continue
                if ino != self.home and self.where.get(child, self.home) != ino:
                    self.served += 1
                self.where[child] = ino

    def stop(self) -> int:
        self.done.set()
        self.join(5)
        return self.served
