"""Gate declarations, endpoints, link snapshots and the TILTAI_* environment.

Pure functions of their input, mirroring Go's gate/control: every problem is
listed at once in one :class:`ConfigError`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

IN_PATTERNS = ("pull", "sub", "rep", "pair")
OUT_PATTERNS = ("push", "pub", "req", "pair")
MAX_PEERS = 16384
MAX_NAME_LEN = 63

ENV_CONTROL = "TILTAI_CONTROL"
ENV_TASK_ID = "TILTAI_TASK_ID"
ENV_SERVICE = "TILTAI_SERVICE"
ENV_GATE_PREFIX = "TILTAI_GATE_"
ENV_TLS = ("TILTAI_TLS_CERT", "TILTAI_TLS_KEY", "TILTAI_TLS_CA")


class ConfigError(ValueError):
    """An invalid declaration, endpoint, environment or snapshot; the message lists every problem."""

    def __init__(self, what: str, problems: list[str]):
        self.problems = problems
        super().__init__(what + ": " + "; ".join(problems))


def valid_for(pattern: str, direction: str) -> bool:
    return pattern in (OUT_PATTERNS if direction == "out" else IN_PATTERNS if direction == "in" else ())


def name_problem(name: str) -> str | None:
    """Why name is not a gate name (a DNS label), or None."""
    if not name:
        return "gate name is empty"
    if len(name) > MAX_NAME_LEN:
        return f"gate name {name[:20]!r}… is {len(name)} characters long (at most {MAX_NAME_LEN})"
    for i, c in enumerate(name):
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-"):
            return f"gate name {name!r} has {c!r} at offset {i} (use a-z, 0-9 and '-')"
    if name[0] == "-" or name[-1] == "-":
        return f"gate name {name!r} starts or ends with '-'"
    return None


_COUNTER_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


def counter_problem(name: str) -> str | None:
    if not _COUNTER_RE.match(name):
        return f"counter name {name[:40]!r}: want 1..128 characters of a-z, A-Z, 0-9, '_', '-', '.'"
    return None


def env_name(gate: str) -> str:
    return ENV_GATE_PREFIX + gate.upper().replace("-", "_")


_LABEL_RE = re.compile(r"^[A-Za-z0-9_\-]{1,63}$")


@dataclass(frozen=True)
class Endpoint:
    host: str  # IP or DNS name; "" or "*" only in a bind address
    port: int  # 0 only in a bind address

    def __str__(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{h}:{self.port}"

    def addr(self) -> tuple[str, int]:
        """(host, port) for socket calls; '*' and '' become all interfaces."""
        return ("" if self.host in ("*", "") else self.host, self.port)


def parse_endpoint(s: str, bind: bool = False) -> Endpoint:
    """Parse tcp://host:port (a bind address may have host '*' and port 0)."""
    if not s.startswith("tcp://"):
        raise ValueError(f"endpoint {s!r}: want tcp://host:port")
    rest = s[6:]
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0 or rest[end + 1:end + 2] != ":":
            raise ValueError(f"endpoint {s!r}: want tcp://host:port")
        host, port = rest[1:end], rest[end + 2:]
    else:
        host, sep, port = rest.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"endpoint {s!r}: want tcp://host:port")
    lo = 0 if bind else 1
    if not port.isdigit() or not lo <= int(port) <= 65535:
        raise ValueError(f"endpoint {s!r}: port {port!r} is not a number in {lo}..65535")
    if host in ("", "*"):
        if not bind:
            raise ValueError(f"endpoint {s!r}: a peer address needs a host")
    else:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if len(host) > 253 or not all(_LABEL_RE.match(lb) for lb in host.split(".")):
                raise ValueError(f"endpoint {s!r}: host {host!r} is neither an IP address nor a DNS name") from None
    return Endpoint(host, int(port))


@dataclass(frozen=True)
class GateSpec:
    """One declared gate: an in-gate's bind address, an out-gate's pattern and static peers."""

    name: str
    dir: str  # "in" or "out"
    pattern: str
    bind: str = ""
    peers: tuple[str, ...] = ()

    def value(self) -> str:
        if self.dir == "in":
            return f"{self.pattern}@{self.bind}"
        return f"{self.pattern}>" + ",".join(self.peers)

    def problems(self) -> list[str]:
        out = []
        if (p := name_problem(self.name)) is not None:
            out.append(p)
        if self.dir not in ("in", "out"):
            out.append(f"gate {self.name!r}: direction {self.dir!r} (want in or out)")
        elif not valid_for(self.pattern, self.dir):
            out.append(f"gate {self.name!r}: pattern {self.pattern!r} is not valid for an {self.dir}-gate")
        if self.dir == "in":
            try:
                parse_endpoint(self.bind, bind=True)
            except ValueError as e:
                out.append(f"gate {self.name!r}: {e}")
        for i, p in enumerate(self.peers):
            try:
                parse_endpoint(p)
            except ValueError as e:
                out.append(f"gate {self.name!r} peer {i}: {e}")
        if len(self.peers) > MAX_PEERS:
            out.append(f"gate {self.name!r}: {len(self.peers)} peers (at most {MAX_PEERS})")
        if self.pattern == "pair" and len(self.peers) > 1:
            out.append(f"gate {self.name!r}: a pair gate has at most one peer, got {len(self.peers)}")
        return out


def parse_gate(name: str, value: str) -> GateSpec:
    """Parse TILTAI_GATE_<NAME>: pattern@tcp://host:port or pattern>peer,peer."""
    i = min((j for j in (value.find("@"), value.find(">")) if j >= 0), default=-1)
    if i < 0:
        raise ValueError(f"gate {name!r}: value {value!r}: want pattern@tcp://host:port (in-gate) or pattern>tcp://host:port,… (out-gate)")
    pattern, sep, rest = value[:i], value[i], value[i + 1:]
    if pattern not in IN_PATTERNS + OUT_PATTERNS:
        raise ValueError(f"gate {name!r}: unknown pattern {pattern!r} (want push, pull, pub, sub, req, rep or pair)")
    if sep == "@":
        if pattern not in IN_PATTERNS:
            raise ValueError(f"gate {name!r}: {pattern!r} binds, so it must be an in-gate pattern (pull, sub, rep or pair)")
        spec = GateSpec(name, "in", pattern, bind=rest)
    else:
        if pattern not in OUT_PATTERNS:
            raise ValueError(f"gate {name!r}: {pattern!r} connects, so it must be an out-gate pattern (push, pub, req or pair)")
        spec = GateSpec(name, "out", pattern, peers=tuple(p for p in rest.split(",") if p) if rest else ())
    if probs := spec.problems():
        raise ValueError("; ".join(probs))
    return spec


@dataclass(frozen=True)
class TLSFiles:
    cert: str = ""
    key: str = ""
    ca: str = ""

    def enabled(self) -> bool:
        return bool(self.cert or self.key or self.ca)


@dataclass
class Env:
    """Everything a service reads from its TILTAI_* environment."""

    control: str = ""
    task_id: str = ""
    service: str = ""
    gates: list[GateSpec] = field(default_factory=list)
    tls: TLSFiles = field(default_factory=TLSFiles)


def control_path(addr: str) -> str:
    if not addr.startswith("unix:///"):
        raise ValueError(f"control address {addr!r}: want unix:///absolute/path/to/control.sock")
    return addr[len("unix://"):]


def parse_env(environ: Mapping[str, str] | None = None) -> Env:
    """Read the TILTAI_* variables, listing every problem at once."""
    environ = os.environ if environ is None else environ
    env, probs = Env(), []
    seen: set[str] = set()
    tls = {}
    for k in sorted(environ):
        v = environ[k]
        if not k.startswith("TILTAI_"):
            continue
        if k == ENV_CONTROL:
            try:
                control_path(v)
                env.control = v
            except ValueError as e:
                probs.append(f"{k}: {e}")
        elif k == ENV_TASK_ID:
            env.task_id = v
        elif k == ENV_SERVICE:
            env.service = v
        elif k in ENV_TLS:
            tls[k] = v
        elif k.startswith(ENV_GATE_PREFIX):
            name = k[len(ENV_GATE_PREFIX):].lower().replace("_", "-")
            if name_problem(name) is not None or env_name(name) != k:
                probs.append(f"{k}: gate variables are TILTAI_GATE_ then the gate name in upper case with '_' for '-'")
                continue
            try:
                g = parse_gate(name, v)
            except ValueError as e:
                probs.append(f"{k}: {e}")
                continue
            if name in seen:
                probs.append(f"{k}: gate {name!r} declared twice")
            seen.add(name)
            env.gates.append(g)
    env.tls = TLSFiles(tls.get(ENV_TLS[0], ""), tls.get(ENV_TLS[1], ""), tls.get(ENV_TLS[2], ""))
    if env.tls.enabled() and not all((env.tls.cert, env.tls.key, env.tls.ca)):
        probs.append("mutual TLS needs all of " + ", ".join(ENV_TLS))
    if env.control:
        for g in env.gates:
            if g.dir == "out" and g.peers:
                probs.append(f"{env_name(g.name)}: static peers are not allowed when {ENV_CONTROL} is set (peers come from the control socket); write {g.pattern}>")
    if probs:
        raise ConfigError("invalid tiltai environment", probs)
    env.gates.sort(key=lambda g: g.name)
    return env


@dataclass(frozen=True)
class Snapshot:
    """The complete, versioned peer lists of a task's out-gates: {gate: (pattern, peers)}."""

    version: int
    out: dict[str, tuple[str, tuple[str, ...]]]

    def peers(self, gate: str) -> tuple[str, ...]:
        link = self.out.get(gate)
        return link[1] if link else ()

    def to_json(self) -> dict:
        return {"version": self.version, "out": {g: {"pattern": p, "peers": list(ps)} for g, (p, ps) in self.out.items()}}


def parse_snapshot(obj: object) -> Snapshot:
    """Validate a snapshot as JSON-decoded, listing every problem."""
    if not isinstance(obj, dict):
        raise ConfigError("invalid snapshot", ["not an object"])
    probs: list[str] = []
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 1 << 64:
        probs.append(f"snapshot version {version!r} (want 1..2^64-1)")
        version = 0
    raw = obj.get("out") or {}
    if not isinstance(raw, dict):
        raise ConfigError("invalid snapshot", probs + ["out is not an object"])
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name in sorted(raw):
        link = raw[name]
        if (p := name_problem(name)) is not None:
            probs.append(f"out-gate {name[:40]!r}: {p}")
        if not isinstance(link, dict):
            probs.append(f"out-gate {name!r}: not an object")
            continue
        pattern, peers = link.get("pattern"), link.get("peers") or []
        if not isinstance(pattern, str) or pattern not in OUT_PATTERNS:
            probs.append(f"out-gate {name!r}: pattern {pattern!r} is not an out-gate pattern (push, pub, req or pair)")
            pattern = ""
        if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
            probs.append(f"out-gate {name!r}: peers is not a list of strings")
            continue
        if len(peers) > MAX_PEERS:
            probs.append(f"out-gate {name!r}: {len(peers)} peers (at most {MAX_PEERS})")
            continue
        if pattern == "pair" and len(peers) > 1:
            probs.append(f"out-gate {name!r}: a pair gate has at most one peer, got {len(peers)}")
        for i, p in enumerate(peers):
            try:
                parse_endpoint(p)
            except ValueError as e:
                probs.append(f"out-gate {name!r} peer {i}: {e}")
            if i > 0 and peers[i - 1] >= p:
                probs.append(f"out-gate {name!r}: peers not sorted and unique at {i}")
        out[name] = (pattern, tuple(peers))
    if probs:
        raise ConfigError("invalid snapshot", probs)
    return Snapshot(version, out)


def static_snapshot(gates: list[GateSpec]) -> Snapshot:
    """Version 1 made of the declared out-gates' static peers (static mode)."""
    return Snapshot(1, {g.name: (g.pattern, tuple(sorted(set(g.peers)))) for g in gates if g.dir == "out"})
