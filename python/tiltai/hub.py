"""The hub: a service's gates, their link snapshots and the executor.

One thread (``Hub._run``) owns the snapshot state: snapshots, newly opened
out-gates, finished drains of removed peers and drain requests arrive on its
queue in order, and it reports ``applied V`` only once every open out-gate
runs on V and every peer V removed has drained.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import ssl
import threading
import time
from typing import Any, Mapping

from .control import Client
from .errors import Closed
from .gate import Gate, Options
from .spec import ConfigError, GateSpec, Snapshot, TLSFiles, counter_problem, env_name, parse_env, static_snapshot

log = logging.getLogger("tiltai")


class Hub:
    """Owns a service's gates.

    Under Tiltai use :meth:`from_env`; without Mesos declare the gates in
    code (``Hub(gates=[GateSpec(...)])``) or in ``TILTAI_GATE_*`` variables
    with static peers. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, gates: list[GateSpec], *, control: str = "", task_id: str = "", service: str = "",
                 tls: TLSFiles | None = None, options: Options | None = None):
        probs: list[str] = []
        seen: set[str] = set()
        for g in gates:
            probs += g.problems()
            if g.name in seen:
                probs.append(f"gate {g.name!r} declared twice")
            seen.add(g.name)
        if probs:
            raise ConfigError("cannot start gates", probs)
        self.specs = {g.name: g for g in gates}
        self.opt = options or Options()
        self.task_id, self.service = task_id, service
        self._tls = _load_tls(tls) if tls is not None and tls.enabled() else None
        self._lock = threading.Lock()
        self._gates: dict[str, Gate] = {}
        self._app: dict[str, int] = {}
        self._ready = False
        self._applied = 0
        self._applied_cv = threading.Condition()
        self._closed = False
        self._events: queue.Queue = queue.Queue()
        self.draining = threading.Event()
        self.drained = threading.Event()
        self._drain_ended = threading.Event()
        self._ctl: Client | None = None
        if control:
            self._ctl = Client(control, task_id, service, status=self.status,
                               on_snapshot=lambda s: self._events.put(("snapshot", s)),
                               on_drain=lambda t: self._events.put(("drain", t)))
            self._ctl.set_gates([])
        else:
            self._events.put(("snapshot", static_snapshot(gates)))
        self._check_ready()
        self._thread = threading.Thread(target=self._run, name="tiltai-hub", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, options: Options | None = None) -> Hub:
        """A hub configured by the TILTAI_* environment (docs/control-protocol.md)."""
        env = parse_env(environ)
        return cls(env.gates, control=env.control, task_id=env.task_id, service=env.service,
                   tls=env.tls, options=options)

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- gates ----------------------------------------------------------

    def out(self, name: str) -> Gate:
        """Open the declared out-gate name; its peers come from link snapshots."""
        return self._open(name, "out")

    def in_(self, name: str) -> Gate:
        """Open the declared in-gate name: it binds at once."""
        return self._open(name, "in")

    def _open(self, name: str, d: str) -> Gate:
        spec = self.specs.get(name)
        if spec is None:
            raise ConfigError(f"cannot open {d}-gate {name!r}", [f"not declared (set {env_name(name)}, or pass it in gates=)"])
        if spec.dir != d:
            raise ConfigError(f"cannot open {d}-gate {name!r}", [f"it is declared as an {spec.dir}-gate ({spec.value()})"])
        with self._lock:
            if self._closed:
                raise Closed(f"cannot open gate {name!r}: the hub is closed")
            if name in self._gates:
                raise ConfigError(f"cannot open gate {name!r}", ["already open"])
            g = Gate(self, spec)
            if d == "in":
                g._listen()
            self._gates[name] = g
        log.info("gate open: gate=%s pattern=%s dir=%s bound=%s", name, spec.pattern, d, g.bound)
        if self._ctl is not None:
            self._ctl.set_gates(self.gate_info())
        self._check_ready()
        if d == "out":
            self._events.put(("opened", g))
        return g

    def _forget(self, g: Gate) -> None:
        with self._lock:
            if self._gates.get(g.name) is g:
                del self._gates[g.name]

    def gate_info(self) -> list[dict[str, str]]:
        """The open gates as the control protocol describes them (in-gates with their bound address)."""
        with self._lock:
            return [{"name": n, "dir": g.dir, "pattern": g.pattern, "bound": g.bound}
                    for n, g in sorted(self._gates.items())]

    def _check_ready(self) -> None:
        with self._lock:
            if self._ready:
                return
            if any(s.dir == "in" and s.name not in self._gates for s in self.specs.values()):
                return
            self._ready = True
        if self._ctl is not None:
            self._ctl.ready()

    @property
    def ready(self) -> bool:
        """Whether every declared in-gate is bound."""
        return self._ready

    def set_counter(self, name: str, value: int) -> None:
        """Set an application counter, reported with every heartbeat."""
        if (p := counter_problem(name)) is not None:
            raise ValueError(f"cannot set application counter: {p}")
        with self._lock:
            self._app[name] = int(value)

    def status(self) -> dict[str, Any]:
        """The heartbeat content: every gate's counters and the application counters."""
        with self._lock:
            gates = list(self._gates.values())
            app = dict(self._app)
            st: dict[str, Any] = {"seq": 0, "applied": self._applied, "ready": self._ready}
        if self.draining.is_set():
            st["draining"] = True
        st["gates"] = {g.name: g.stats() for g in gates}
        if app:
            st["app"] = app
        return st

    def publish(self, snapshot: Snapshot) -> None:
        """Hand the hub a link snapshot, as the executor would (no executor:
        tests, or code that decides its peers itself). Versions must increase."""
        if self._ctl is not None:
            raise ConfigError("cannot publish a snapshot", ["the executor's control socket supplies them"])
        self._events.put(("snapshot", snapshot))

    @property
    def applied(self) -> int:
        """The latest link snapshot version reported applied."""
        return self._applied

    def wait_applied(self, version: int, timeout: float | None = None) -> bool:
        """Wait until version (or a later one) is applied; False on timeout."""
        with self._applied_cv:
            return self._applied_cv.wait_for(lambda: self._applied >= version, timeout)

    # --- drain ------------------------------------------------------------

    def drain(self, timeout: float = 0) -> None:
        """Drain every open in-gate: no new connections, what is held is
        delivered; done once the upstream peers have closed their connections
        and the application has taken everything, or at the deadline."""
        self._start_drain(timeout)
        self.drained.wait()

    def _start_drain(self, timeout: float) -> None:
        with self._lock:
            if self.draining.is_set():
                return
            self.draining.set()
        deadline = time.monotonic() + (timeout if timeout > 0 else self.opt.drain_timeout)
        threading.Thread(target=self._drain_in, args=(deadline,), name="tiltai-drain", daemon=True).start()

    def _drain_in(self, deadline: float) -> None:
        try:
            with self._lock:
                ins = [g for g in self._gates.values() if g.dir == "in"]
            ts = [threading.Thread(target=g._drain, args=(deadline,), daemon=True) for g in ins]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            # Drained once the application has taken what the gates held.
            for g in ins:
                with g._cv:
                    g._cv.wait_for(lambda: not g._rq or g._closed, timeout=max(0.0, deadline - time.monotonic()))
            log.info("drained: gates=%d", len(ins))
            self.drained.set()
            if self._ctl is not None:
                self._ctl.drained()
                self._ctl.flush()
        finally:
            self._drain_ended.set()

    # --- the owner thread -------------------------------------------------

    def _check(self, s: Snapshot, last: Snapshot | None) -> list[str]:
        if last is not None and s.version <= last.version:
            return [f"version {s.version} is not above the applied {last.version}"]
        # As the executor and the Go hub (control.Snapshot.CheckDeclared): an
        # undeclared out-gate is refused, never skipped.
        problems = []
        for name, (pattern, _) in sorted(s.out.items()):
            spec = self.specs.get(name)
            if spec is None:
                problems.append(f"out-gate {json.dumps(name)} is not a gate of this task")
            elif spec.dir != "out":
                problems.append(f"{json.dumps(name)} is an in-gate of this task, not an out-gate")
            elif spec.pattern != pattern:
                problems.append(f"out-gate {json.dumps(name)} is {spec.pattern} in the task, {pattern} in the snapshot")
        if problems:
            return [f"link snapshot {s.version} does not fit the task: " + "; ".join(problems)]
        return []

    def _run(self) -> None:
        latest: Snapshot | None = None
        pending: list[threading.Event] = []
        waiting: tuple[int, list[threading.Event]] | None = None
        reported = 0
        while True:
            try:
                ev = self._events.get(timeout=0.01 if waiting else None)
            except queue.Empty:
                ev = None
            if ev is not None:
                kind = ev[0]
                if kind == "close":
                    return
                if kind == "snapshot":
                    s: Snapshot = ev[1]
                    errs = self._check(s, latest)
                    if errs:
                        log.warning("rejecting link snapshot %d: %s", s.version, "; ".join(errs))
                        if self._ctl is not None:
                            self._ctl.rejected(s.version, "; ".join(errs))
                        continue
                    latest = s
                    with self._lock:
                        gates = [g for g in self._gates.values() if g.dir == "out"]
                    for g in gates:
                        pending.append(g._set_peers(s.peers(g.name)))
                elif kind == "opened":
                    g = ev[1]
                    if latest is not None:
                        pending.append(g._set_peers(latest.peers(g.name)))
                elif kind == "drain":
                    self._start_drain(ev[1])
            # One wait at a time covers the removals of every version up to
            # the one it started on; later removals queue in pending.
            if waiting is None and latest is not None and (pending or latest.version > reported):
                waiting, pending = (latest.version, pending), []
            if waiting is not None and all(e.is_set() for e in waiting[1]):
                v = waiting[0]
                waiting = None
                if v > reported:
                    reported = v
                    with self._applied_cv:
                        self._applied = v
                        self._applied_cv.notify_all()
                    if self._ctl is not None:
                        self._ctl.applied(v)
                if latest is not None and (pending or latest.version > reported):
                    waiting, pending = (latest.version, pending), []

    # --- TLS --------------------------------------------------------------

    def _wrap_tls(self, sock: socket.socket, server: bool, timeout: float) -> socket.socket:
        if self._tls is None:
            return sock
        sock.settimeout(timeout)
        ctx = self._tls[0] if server else self._tls[1]
        return ctx.wrap_socket(sock, server_side=server)

    # --- close ------------------------------------------------------------

    def close(self) -> None:
        """Close every gate (out-gates deliver first) and the control
        connection; raises the out-gates' Undelivered errors. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            gates = list(self._gates.values())
        errs: list[BaseException] = []

        def close(g: Gate) -> None:
            try:
                g.close()
            except Exception as e:  # noqa: BLE001 — reported below
                errs.append(e)
        ts = [threading.Thread(target=close, args=(g,), daemon=True) for g in gates]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if self.draining.is_set():
            # "drained" must reach the executor before the control
            # connection closes; with the gates closed the drain ends at once.
            self._drain_ended.wait()
        self._events.put(("close",))
        self._thread.join()
        if self._ctl is not None:
            self._ctl.close()
        if errs:
            raise errs[0]


def _load_tls(f: TLSFiles) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client contexts for mutual TLS 1.3: both sides present a
    certificate and verify the other's chain against the CA; peer names are
    not checked (peers are addressed by IP and port)."""
    if not (f.cert and f.key and f.ca):
        raise ConfigError("cannot set up mutual TLS", ["need TILTAI_TLS_CERT, TILTAI_TLS_KEY and TILTAI_TLS_CA"])
    out = []
    for purpose in (ssl.Purpose.CLIENT_AUTH, ssl.Purpose.SERVER_AUTH):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        try:
            ctx.load_cert_chain(f.cert, f.key)
            ctx.load_verify_locations(f.ca)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError("cannot set up mutual TLS", [f"certificate {f.cert} / key {f.key} / CA {f.ca}: {e}"]) from None
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        out.append(ctx)
    return out[0], out[1]


def pid() -> int:
    return os.getpid()
