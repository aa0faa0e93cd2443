"""Shared test helpers: gates on loopback, the Go peer program, waiting with deadlines."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from tiltai import GateSpec, Hub, Options

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_gopeer_lock = threading.Lock()
_gopeer: str | None = None


def gopeer() -> str:
    """The Go gate program (python/gotest/gopeer): $TILTAI_GOPEER, else built once with go."""
    global _gopeer
    with _gopeer_lock:
        if _gopeer is None:
            path = os.environ.get("TILTAI_GOPEER")
            if not path:
                if shutil.which("go") is None:
                    raise unittest.SkipTest("no go toolchain and no TILTAI_GOPEER: Go interop not tested")
                path = os.path.join(tempfile.mkdtemp(prefix="tiltai-gopeer-"), "gopeer")
                subprocess.run(["go", "build", "-o", path, "./python/gotest/gopeer"], cwd=REPO, check=True)
            _gopeer = path
        return _gopeer


class GoPeer:
    """A running gopeer; bound() reads the address an in-gate role prints."""

    def __init__(self, *args: str):
        self.p = subprocess.Popen([gopeer(), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)

    def bound(self) -> str:
        line = self.p.stdout.readline().split()
        assert line[:1] == ["bound"], line
        return line[1]

    def expect(self, line: str) -> None:
        """Read its next line of output, which must be line."""
        got = self.p.stdout.readline().strip()
        assert got == line, f"gopeer said {got!r}, want {line!r}"

    def finish(self, timeout: float = 60) -> str:
        """Close its stdin, wait for it, return its last line; fail on a non-zero exit."""
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
            raise AssertionError(f"gopeer did not finish: {err}")
        if self.p.returncode != 0:
            raise AssertionError(f"gopeer failed ({self.p.returncode}): {err}")
        return out.strip().splitlines()[-1]

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.communicate()


def hub_in(pattern: str, name: str = "g", options: Options | None = None, **kw) -> tuple[Hub, object]:
    h = Hub([GateSpec(name, "in", pattern, bind="tcp://127.0.0.1:0")], options=options, **kw)
    return h, h.in_(name)


def hub_out(pattern: str, *peers: str, name: str = "g", options: Options | None = None, **kw) -> tuple[Hub, object]:
    h = Hub([GateSpec(name, "out", pattern, peers=tuple(peers))], options=options, **kw)
    return h, h.out(name)


def wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def two_part(i: int) -> tuple[bytes, bytes]:
    """The message gopeer sends and checks: its number and i % 300 bytes."""
    return (b"m%d" % i, b"x" * (i % 300))
