"""The service's end of the Tiltai control protocol (version 1).

One thread owns the client's state (what the executor must know: gates,
ready, applied, rejected, drained) and the connection; everything else talks
to it through a queue. It connects in the background, reconnects with backoff
(20 ms doubling to 2 s) and re-sends its state after every hello, exactly as
Go's ``gate/control.Client``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import struct
import threading
import time
from typing import Any, Callable

from .spec import ConfigError, control_path, parse_snapshot, Snapshot

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20
MAX_TEXT_FIELD = 4096

log = logging.getLogger("tiltai.control")


class ControlProtocolError(Exception):
    """The executor sent something the protocol does not allow."""


class UnknownType(Exception):
    """A well-formed message of a type this version does not know: ignored."""


def encode(m: dict[str, Any]) -> bytes:
    b = json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    if len(b) > MAX_LINE_BYTES:
        raise ValueError(f"cannot encode {m.get('type')} message: {len(b)} bytes exceeds the {MAX_LINE_BYTES}-byte line limit")
    return b


def _int(m: dict, k: str) -> int:
    v = m.get(k, 0)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ControlProtocolError(f"{m.get('type')} message: {k} is not an integer")
    return v


def decode(line: bytes) -> dict[str, Any]:
    """Parse and validate one executor → service line."""
    try:
        m = json.loads(line.rstrip(b"\r\n"))
    except ValueError as e:
        raise ControlProtocolError(f"control message is not a JSON object: {e}") from None
    if not isinstance(m, dict):
        raise ControlProtocolError("control message is not a JSON object")
    t = m.get("type")
    if t == "welcome":
        if _int(m, "protocol") < 1 or _int(m, "heartbeat_ms") < 0:
            raise ControlProtocolError(f"welcome message: protocol {m.get('protocol')}, heartbeat_ms {m.get('heartbeat_ms')} (want ≥ 1, ≥ 0)")
    elif t == "snapshot":
        if "snapshot" not in m:
            raise ControlProtocolError("snapshot message: no snapshot field")
        try:
            m["snapshot"] = parse_snapshot(m["snapshot"])
        except ConfigError as e:
            raise ControlProtocolError(f"snapshot message: {e}") from None
    elif t == "drain":
        if _int(m, "timeout_ms") < 0:
            raise ControlProtocolError(f"drain message: timeout_ms {m.get('timeout_ms')} is negative")
    elif t == "error":
        if not isinstance(m.get("error", ""), str):
            raise ControlProtocolError("error message: error is not a string")
    elif not t:
        raise ControlProtocolError("control message has no type")
    elif isinstance(t, str):
        raise UnknownType(t[:40])
    else:
        raise ControlProtocolError("control message type is not a string")
    return m


class LineReader:
    """Splits a stream into lines, never holding more than MAX_LINE_BYTES of one."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        lines = []
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                break
            if i + 1 > MAX_LINE_BYTES:
                raise ControlProtocolError(f"control message longer than {MAX_LINE_BYTES} bytes")
            line = bytes(self.buf[:i + 1])
            del self.buf[:i + 1]
            if line.strip():
                lines.append(line)
        if len(self.buf) >= MAX_LINE_BYTES:
            raise ControlProtocolError(f"control message longer than {MAX_LINE_BYTES} bytes")
        return lines


_DIRTY_ORDER = ("gates", "ready", "applied", "rejected", "drained")


class Client:
    """A service's connection to its executor.

    on_snapshot(Snapshot) and on_drain(timeout_s) are called from the
    client's thread and must not block; status() is called once per
    heartbeat and must not block either.
    """

    def __init__(self, addr: str, task_id: str, service: str, *,
                 status: Callable[[], dict], on_snapshot: Callable[[Snapshot], None],
                 on_drain: Callable[[float], None], write_timeout: float = 5.0):
        self.path = control_path(addr)
        self.task_id, self.service = task_id, service
        self._status, self._on_snapshot, self._on_drain = status, on_snapshot, on_drain
        self._write_timeout = write_timeout
        self._events: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tiltai-control", daemon=True)
        self._readers: list[threading.Thread] = []
        self._thread.start()

    # --- what the hub tells the executor --------------------------------

    def set_gates(self, gates: list[dict]) -> None:
        self._events.put(("update", "gates", list(gates)))

    def ready(self) -> None:
        self._events.put(("update", "ready", True))

    def applied(self, version: int) -> None:
        self._events.put(("update", "applied", version))

    def rejected(self, version: int, error: str) -> None:
        self._events.put(("update", "rejected", (version, error[:MAX_TEXT_FIELD])))

    def drained(self) -> None:
        self._events.put(("update", "drained", True))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything told so far has been handled (written, if connected)."""
        done = threading.Event()
        self._events.put(("sync", done))
        done.wait(timeout)

    def close(self) -> None:
        """Disconnect and wait for the client's threads. Idempotent."""
        if not self._closed.is_set():
            self._closed.set()
            self._events.put(("close",))
        self._thread.join()
        for t in self._readers:
            t.join()

    # --- the owner thread ---------------------------------------------

    def _run(self) -> None:
        st: dict[str, Any] = {"gates": [], "ready": False, "applied": 0, "rejected": None, "drained": False}
        dirty: set[str] = set()
        conn: socket.socket | None = None
        last_snap = 0
        beat = 1.0
        next_beat = time.monotonic() + beat
        seq = 0
        backoff = 0.02
        redial_at = time.monotonic()
        fails = 0

        def drop(why: str, err: object) -> None:
            nonlocal conn, redial_at
            if conn is None:
                return
            log.warning("control connection lost; reconnecting: %s: %s", why, err)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
            conn = None
            redial_at = time.monotonic() + backoff

        def send(m: dict) -> bool:
            if conn is None:
                return False
            try:
                conn.sendall(encode(m))
                return True
            except (OSError, ValueError) as e:
                drop("write " + m["type"], e)
                return False

        def flush() -> None:
            for t in _DIRTY_ORDER:
                if t not in dirty or conn is None:
                    continue
                if t == "gates":
                    ok = send({"type": "gates", "gates": st["gates"]})
                elif t == "ready":
                    ok = send({"type": "ready"})
                elif t == "applied":
                    ok = send({"type": "applied", "version": st["applied"]})
                elif t == "rejected":
                    v, err = st["rejected"]
                    ok = send({"type": "rejected", "version": v, "error": err})
                else:
                    ok = send({"type": "drained"})
                if ok:
                    dirty.discard(t)

        try:
            while True:
                now = time.monotonic()
                wake = next_beat if conn is not None else redial_at
                try:
                    ev = self._events.get(timeout=max(0.0, wake - now))
                except queue.Empty:
                    ev = None
                if ev is None:
                    now = time.monotonic()
                    if conn is None and now >= redial_at:
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.settimeout(2.0)
                        try:
                            s.connect(self.path)
                        except OSError as e:
                            s.close()
                            fails += 1
                            if fails == 1 or fails % 50 == 0:
                                log.warning("cannot connect to the executor's control socket %s (attempt %d); retrying: %s", self.path, fails, e)
                            backoff = min(backoff * 2, 2.0)
                            redial_at = now + backoff
                            continue
                        fails, backoff, conn = 0, 0.02, s
                        # Blocking reads in the reader thread; writes bounded by SO_SNDTIMEO.
                        s.settimeout(None)
                        sec = int(self._write_timeout)
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                                     struct.pack("ll", sec, int((self._write_timeout - sec) * 1e6)))
                        r = threading.Thread(target=self._read, args=(s,), name="tiltai-control-read", daemon=True)
                        self._readers = [t for t in self._readers if t.is_alive()] + [r]
                        r.start()
                        hello: dict[str, Any] = {"type": "hello", "protocol": PROTOCOL_VERSION, "task_id": self.task_id,
                                                 "service": self.service, "pid": os.getpid()}
                        if st["gates"]:
                            hello["gates"] = st["gates"]
                        if send(hello):
                            # Everything the executor knew died with the old connection.
                            dirty.discard("gates")
                            for k in ("ready", "drained"):
                                if st[k]:
                                    dirty.add(k)
                            if st["applied"]:
                                dirty.add("applied")
                            if st["rejected"]:
                                dirty.add("rejected")
                            flush()
                        next_beat = time.monotonic() + beat
                    elif conn is not None and now >= next_beat:
                        seq += 1
                        status = self._status()
                        status["seq"] = seq
                        send({"type": "status", "status": status})
                        next_beat = now + beat
                    continue
                kind = ev[0]
                if kind == "close":
                    return
                if kind == "sync":
                    ev[1].set()
                elif kind == "update":
                    _, k, v = ev
                    if k == "applied":
                        if v <= st["applied"]:
                            continue
                    if k == "gates":
                        st[k] = [dict((kk, vv) for kk, vv in g.items() if vv) for g in v]
                    else:
                        st[k] = v
                    dirty.add(k)
                    flush()
                elif kind == "in":
                    _, c, m, err = ev
                    if c is not conn:
                        continue
                    if err is not None:
                        if isinstance(err, ControlProtocolError):
                            send({"type": "error", "error": str(err)[:MAX_TEXT_FIELD]})
                        drop("read", err)
                        continue
                    t = m["type"]
                    if t == "welcome":
                        if m.get("heartbeat_ms", 0) > 0:
                            beat = max(m["heartbeat_ms"] / 1000.0, 0.01)
                            next_beat = min(next_beat, time.monotonic() + beat)
                    elif t == "snapshot":
                        s: Snapshot = m["snapshot"]
                        if s.version <= last_snap:
                            # Already delivered (a resend after reconnect): acknowledge again.
                            if st["applied"] >= s.version:
                                send({"type": "applied", "version": st["applied"]})
                            continue
                        last_snap = s.version
                        self._on_snapshot(s)
                    elif t == "drain":
                        self._on_drain(m.get("timeout_ms", 0) / 1000.0)
                    elif t == "error":
                        log.warning("executor reported a control error: %s", m.get("error", ""))
        finally:
            if conn is not None:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()

    def _read(self, s: socket.socket) -> None:
        lr = LineReader()
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    raise EOFError("the executor closed the control connection")
                for line in lr.feed(data):
                    try:
                        m = decode(line)
                    except UnknownType:
                        continue
                    self._events.put(("in", s, m, None))
        except (OSError, EOFError, ControlProtocolError) as e:
            self._events.put(("in", s, None, e))
