"""Gates: named in-process ZMTP 3.0 interfaces whose peers are set from outside.

Every connection is a :class:`_Link` with one reader thread; out-gates have
one dialler thread per peer that connects, handshakes and then writes. A gate's
state (queues, windows, links, counters) is guarded by one condition variable,
``Gate._cv``: threads wait on it for room, messages, acknowledgements or close.

Queues are bounded (``Options.queue_len`` / ``queue_bytes``): ``send`` blocks
while a push gate's queue is full, and a reader whose batch does not fit into
an in-gate's receive queue stops reading, so acknowledgements stop and the
sender's window closes — backpressure end to end, as in the Go gates.
"""

from __future__ import annotations

import collections
import logging
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from . import wire
from .errors import Closed, Drained, PatternError, PeerLost, TooBigError, Undelivered
from .spec import GateSpec, parse_endpoint
from .wire import Message, ProtocolError

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("tiltai.gate")

#: What a received message is charged in the receive queue beyond its payload.
PART_COST = 24


@dataclass
class Options:
    """Tune every gate of a hub; the defaults are the Go gates'."""

    queue_len: int = 8192
    queue_bytes: int = 16 << 20
    max_message_size: int = 4 << 20
    max_conns: int = 256
    batch_msgs: int = 1024
    batch_bytes: int = 64 << 10
    window: int = 16384
    window_bytes: int = 8 << 20
    drain_timeout: float = 10.0
    handshake_timeout: float = 5.0
    dial_timeout: float = 2.0
    retry_min: float = 0.005
    retry_max: float = 0.1


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return deadline - time.monotonic()


def _msg_size(m: Sequence[bytes]) -> int:
    return sum(len(p) for p in m)


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for TLS sockets: it wakes a reader
    # blocked in recv without touching the TLS object that reader uses.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Conn:
    """A handshaken ZMTP connection: a frame reader and a locked writer."""

    def __init__(self, sock: socket.socket, remote: str):
        self.sock = sock
        self.remote = remote
        self.fr = wire.FrameReader()
        self.wlock = threading.Lock()

    def handshake(self, socket_type: str, accepts: set[str], timeout: float) -> bool:
        """Exchange greetings and READY; return whether the peer speaks the extension."""
        self.sock.settimeout(timeout)
        self.sock.sendall(wire.greeting())
        g = b""
        while len(g) < wire.GREETING_LEN:
            chunk = self.sock.recv(wire.GREETING_LEN - len(g))
            if not chunk:
                raise ConnectionError(f"{self.remote} closed the connection during the handshake")
            g += chunk
            wire.check_greeting_prefix(g)
        wire.check_greeting(g)
        self.sock.sendall(wire.ready(socket_type))
        while True:
            f = self.fr.next(wire.MAX_HANDSHAKE_CMD)
            if f is not None:
                break
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError(f"{self.remote} closed the connection during the handshake")
            self.fr.feed(data)
        fl, body = f
        if fl & wire.FLAG_COMMAND == 0 or fl & wire.FLAG_MORE:
            raise ProtocolError(f"frame flags {fl:#x} during handshake (want a command)")
        peer_type, ext = wire.parse_ready(body)
        if peer_type.upper() not in accepts:
            raise ProtocolError(f"incompatible socket type {peer_type[:20]!r} (want {' or '.join(sorted(accepts))})")
        self.sock.settimeout(None)
        return ext

    def write(self, data: bytes) -> None:
        with self.wlock:
            self.sock.sendall(data)

    def close(self) -> None:
        _shutdown(self.sock)
        try:
            self.sock.close()
        except OSError:
            pass


class _Link:
    """One connection of a gate, with what is in flight on it."""

    def __init__(self, gate: Gate, conn: _Conn, ext: bool, peer: _Peer | None):
        self.gate, self.conn, self.ext, self.peer = gate, conn, ext, peer
        self.remote = conn.remote
        self.closed = False
        self.err: BaseException | None = None
        # push/pair: messages written and acknowledged, and the unacknowledged
        # batches as (count written after it, messages, bytes).
        self.written = self.acked = 0
        self.unacked: collections.deque[tuple[int, list[Message], int]] = collections.deque()
        self.ubytes = 0
        self.writing = False
        # receiving side: messages received, and acknowledged to the peer.
        self.recv_n = self.acked_n = 0
        self.acks = ext and gate.pattern in ("pull", "pair")
        # pub: the subscriber's topics and its own bounded queue.
        self.topics: set[bytes] = set()
        self.active = False
        self.pubq: collections.deque[Message] = collections.deque()
        self.pubq_bytes = 0
        # req: the reply slot of the caller waiting on this link.
        self.busy = False
        self.abandoned = False
        self.reply: Message | None = None
        self.parts: list[bytes] = []
        self.psize = 0

    def max_frame(self) -> int:
        o = self.gate.opt
        if self.ext:
            return max(o.batch_bytes, o.max_message_size) + (64 << 10)
        return o.max_message_size + 64

    def fail(self, err: BaseException) -> None:
        """Close the link; what it had not had acknowledged goes back to the queue."""
        g = self.gate
        with g._cv:
            if self.closed:
                return
            self.closed = True
            self.err = err
            g._link_closed(self)
            g._cv.notify_all()
        if isinstance(err, ProtocolError):
            g._count("refused")
            log.warning("dropping gate connection: gate=%s peer=%s: %s", g.name, self.remote, err)
        self.conn.close()

    # --- reading ----------------------------------------------------------

    def read_loop(self) -> None:
        fr, sock = self.conn.fr, self.conn.sock
        try:
            while True:
                while True:
                    f = fr.next(self.max_frame())
                    if f is None:
                        break
                    self._frame(f[0], f[1])
                if self.closed:
                    return
                if self.acked_n < self.recv_n and self.acks:
                    # What _deliver did not acknowledge because more was
                    # buffered: on a pair that can be the peer's ack of our
                    # own messages, after which nothing may come until we
                    # acknowledge.
                    self._send_ack()
                data = sock.recv(256 << 10)
                if not data:
                    raise ConnectionError(f"{self.remote} closed the connection")
                fr.feed(data)
        except (OSError, ProtocolError, ValueError, ConnectionError, ssl.SSLError, Closed) as e:
            self.fail(e)

    def _frame(self, fl: int, body: bytes) -> None:
        g = self.gate
        if fl & wire.FLAG_COMMAND:
            name, data = wire.split_command(body)
            if name == "PING":
                self.conn.write(wire.command("PONG", data[2:] if len(data) > 2 else b""))
            elif name in ("SUBSCRIBE", "CANCEL") and g.pattern == "pub":
                self._subscribe(name == "SUBSCRIBE", data)
            elif name == "ERROR":
                raise ConnectionError(f"{self.remote} sent ERROR: {data[:200]!r}")
            return
        if self.ext:
            if fl & wire.FLAG_MORE or not body:
                raise ProtocolError("malformed extension frame")
            kind = body[0]
            if kind == wire.KIND_DATA:
                msgs = wire.decode_batch(body, g.opt.max_message_size)
                if msgs:
                    self._deliver(msgs, None)
            elif kind == wire.KIND_ACK:
                if g.pattern not in ("push", "pair"):
                    raise ProtocolError(f"ack on a {g.pattern} gate")
                v, i = wire.read_uvarint(body, 1)
                if i != len(body):
                    raise ProtocolError("malformed ack")
                self._ack(v)
            elif kind in (wire.KIND_SUB, wire.KIND_UNSUB):
                if g.pattern == "pub":
                    self._subscribe(kind == wire.KIND_SUB, body[1:])
            elif kind == wire.KIND_SYNC:
                if g.pattern == "pub":
                    with g._cv:
                        self.active = True
            else:
                raise ProtocolError(f"unknown extension frame kind {kind:#x}")
            return
        self.parts.append(body)
        self.psize += len(body)
        if self.psize > g.opt.max_message_size or len(self.parts) > wire.MAX_FRAMES_PER_MSG:
            raise ProtocolError(f"message of more than {g.opt.max_message_size} bytes or {wire.MAX_FRAMES_PER_MSG} parts")
        if fl & wire.FLAG_MORE:
            return
        m, self.parts, self.psize = tuple(self.parts), [], 0
        if g.pattern == "pub":
            # ZMTP 3.0 subscriptions: one frame, 1 or 0 then the topic.
            if len(m) == 1 and m[0] and m[0][0] in (0, 1):
                self._subscribe(m[0][0] == 1, m[0][1:])
            return
        env: Message | None = None
        if g.pattern == "rep":
            i = 0
            while i < len(m) and m[i]:
                i += 1
            if i >= len(m) - 1:
                raise ProtocolError("request without an envelope delimiter or a body")
            env, m = m[:i + 1], m[i + 1:]
        elif g.pattern == "req":
            if len(m) < 2 or m[0]:
                raise ProtocolError("reply without an empty delimiter")
            m = m[1:]
        self._deliver([m], env)

    def _deliver(self, msgs: list[Message], env: Message | None) -> None:
        g = self.gate
        p = g.pattern
        if p in ("req", "rep") and len(msgs) != 1:
            raise ProtocolError(f"{len(msgs)} messages in one {p} frame (one request or reply at a time)")
        if p == "req":
            with g._cv:
                if not self.busy:
                    raise ProtocolError("reply nobody asked for")
                if self.abandoned:
                    g._ctr["dropped"] += 1
                    self.busy = self.abandoned = False
                else:
                    self.reply = msgs[0]
                g._cv.notify_all()
            return
        if p not in ("pull", "sub", "pair", "rep"):
            raise ProtocolError(f"{p} gate received data from {self.remote}")
        items: list[Any] = msgs if p != "rep" else [Request(self, msgs[0], env)]
        cost = sum(_msg_size(m) + PART_COST * len(m) for m in msgs)
        with g._cv:
            # A batch bigger than what is left is taken only by an empty queue.
            while g._rq and g._rq_bytes + cost > g.opt.queue_bytes and not self.closed and not g._closed:
                g._cv.wait()
            if self.closed or g._closed:
                g._ctr["dropped"] += len(msgs)
                raise Closed("gate is closed")
            g._rq.extend((it, cost // len(items)) for it in items)
            g._rq_bytes += cost // len(items) * len(items)
        self.recv_n += len(msgs)
        # Acknowledge receipt, coalesced: when nothing more is buffered, else
        # every quarter window under load (and see read_loop). The ack leaves
        # before the application is notified.
        if self.acks and (self.conn.fr.buffered() == 0 or self.recv_n - self.acked_n >= max(1, g.opt.window // 4)):
            try:
                self._send_ack()
            finally:
                with g._cv:
                    g._cv.notify_all()
            return
        with g._cv:
            g._cv.notify_all()

    def _send_ack(self) -> None:
        try:
            self.conn.write(wire.ext_frame(wire.KIND_ACK, wire.uvarint(self.recv_n)))
        finally:
            self.acked_n = self.recv_n

    def _ack(self, n: int) -> None:
        g = self.gate
        with g._cv:
            if n < self.acked or n > self.written:
                raise ProtocolError(f"ack of {n} messages, {self.acked} acked and {self.written} written")
            self.acked = n
            while self.unacked and self.unacked[0][0] <= n:
                self.ubytes -= self.unacked.popleft()[2]
            g._cv.notify_all()

    def _subscribe(self, on: bool, topic: bytes) -> None:
        with self.gate._cv:
            if on:
                self.topics.add(bytes(topic))
            else:
                self.topics.discard(bytes(topic))
            if not self.ext:
                self.active = True  # a plain subscriber is live once it subscribed

    def subscribed(self, topic: bytes) -> bool:
        return any(topic.startswith(t) for t in self.topics)

    def take_unacked(self) -> list[Message]:
        """Every message written and not acknowledged (caller holds the gate lock)."""
        out: list[Message] = []
        start = self.acked
        for end, msgs, _ in self.unacked:
            first = end - len(msgs)
            out.extend(msgs[max(0, start - first):])
        self.unacked.clear()
        self.ubytes = 0
        self.written = self.acked
        return out

    # --- writing (push and pair) ------------------------------------------

    def write_loop(self, stop: Callable[[], bool]) -> None:
        """Take batches from the gate's queue while the window allows, until
        the link closes or stop() says so (checked under the gate lock)."""
        g, o = self.gate, self.gate.opt
        q = g._sq
        while True:
            with g._cv:
                while True:
                    if self.closed or stop():
                        return
                    if q and (not self.ext or (self.written - self.acked < o.window and self.ubytes < o.window_bytes)):
                        break
                    g._cv.wait()
                room = o.batch_msgs
                if self.ext:
                    room = min(room, o.window - (self.written - self.acked))
                batch: list[Message] = []
                size = 0
                while q and len(batch) < room:
                    m = q[0]
                    s = _msg_size(m)
                    if batch and size + s > o.batch_bytes:
                        break
                    q.popleft()
                    batch.append(m)
                    size += s
                g._sq_bytes -= size
                if self.ext:
                    self.written += len(batch)
                    self.unacked.append((self.written, batch, size))
                    self.ubytes += size
                self.writing = True
                g._cv.notify_all()
            try:
                if self.ext:
                    self.conn.write(wire.data_frame(batch))
                else:
                    self.conn.write(b"".join(wire.plain(m) for m in batch))
            except (OSError, ssl.SSLError) as e:
                if not self.ext:
                    # A plain peer has no acks: what failed to write is taken
                    # back whole (some of it may have arrived).
                    with g._cv:
                        g._requeue(batch)
                        self.writing = False
                self.fail(e)
                return
            with g._cv:
                self.writing = False
                g._ctr["sent"] += len(batch)
                g._cv.notify_all()

    def pub_loop(self, stop: Callable[[], bool]) -> None:
        """Write this subscriber's queue until the link closes or stop() (with the queue empty)."""
        g = self.gate
        while True:
            with g._cv:
                while not self.pubq:
                    if self.closed or stop():
                        return
                    g._cv.wait()
                if self.closed:
                    return
                batch: list[Message] = []
                size = 0
                while self.pubq and len(batch) < g.opt.batch_msgs and (not batch or size + _msg_size(self.pubq[0]) <= g.opt.batch_bytes):
                    m = self.pubq.popleft()
                    batch.append(m)
                    size += _msg_size(m)
                self.pubq_bytes -= size
                g._cv.notify_all()
            try:
                self.conn.write(wire.data_frame(batch) if self.ext else b"".join(wire.plain(m) for m in batch))
            except (OSError, ssl.SSLError) as e:
                with g._cv:
                    g._ctr["dropped"] += len(batch)
                self.fail(e)
                return
            with g._cv:
                g._ctr["sent"] += len(batch)


class Request:
    """A request taken from a rep gate; answer it with :meth:`reply` (from any thread, in any order)."""

    def __init__(self, link: _Link, msg: Message, env: Message | None):
        self._link, self.msg, self._env = link, msg, env
        self._done = False

    def __iter__(self):
        return iter(self.msg)

    def __getitem__(self, i: int) -> bytes:
        return self.msg[i]

    def __len__(self) -> int:
        return len(self.msg)

    def reply(self, *parts: bytes) -> None:
        """Send the reply; raises PeerLost if the requester went away (counted dropped)."""
        m = _check_msg(parts, self._link.gate.opt)
        if self._done:
            raise PatternError("request already answered")
        self._done = True
        link, g = self._link, self._link.gate
        data = wire.data_frame([m]) if link.ext else wire.plain(tuple(self._env or ()) + m)
        if not link.closed:
            try:
                link.conn.write(data)
                g._count("sent")
                return
            except (OSError, ssl.SSLError) as e:
                link.fail(e)
        g._count("dropped")
        raise PeerLost(f"gate {g.name!r}: the requester {link.remote} went away before the reply")


def _check_msg(parts: Sequence[bytes], opt: Options) -> Message:
    if not parts:
        raise TooBigError("a message needs at least one part")
    m = tuple(bytes(p) if not isinstance(p, bytes) else p for p in parts)
    if len(m) > wire.MAX_FRAMES_PER_MSG or _msg_size(m) > opt.max_message_size:
        raise TooBigError(f"message of {_msg_size(m)} bytes in {len(m)} parts (at most {opt.max_message_size} bytes, {wire.MAX_FRAMES_PER_MSG} parts)")
    return m


class _Peer:
    """An out-gate's peer: a thread that dials, handshakes and writes, re-dialling
    after any failure with jittered backoff, until it is retired."""

    def __init__(self, gate: Gate, endpoint: str):
        self.gate, self.endpoint = gate, endpoint
        self.retiring = False
        self.link: _Link | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"tiltai-{gate.name}-{endpoint}", daemon=True)

    def retire(self, deadline: float) -> None:
        """Stop routing to the peer; the thread drains what is in flight until
        deadline. The caller holds the gate's lock."""
        self.retiring = True
        self.deadline = deadline
        self.gate._cv.notify_all()

    def _stop(self) -> bool:
        return self.retiring or self.gate._closed

    def _run(self) -> None:
        g = self.gate
        o = g.opt
        ep = parse_endpoint(self.endpoint)
        backoff = o.retry_min
        try:
            while not self._stop():
                try:
                    sock = socket.create_connection(ep.addr(), timeout=o.dial_timeout)
                except OSError as e:
                    log.debug("cannot dial gate %s peer %s: %s", g.name, self.endpoint, e)
                    with g._cv:
                        g._cv.wait_for(self._stop, timeout=backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, o.retry_max)
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    sock = g._hub._wrap_tls(sock, server=False, timeout=o.handshake_timeout)
                    conn = _Conn(sock, self.endpoint)
                    ext = conn.handshake(wire.SOCKET_TYPE[g.pattern], wire.COMPATIBLE[wire.SOCKET_TYPE[g.pattern]], o.handshake_timeout)
                except (OSError, ProtocolError, ConnectionError, ssl.SSLError) as e:
                    log.info("cannot connect gate %s to %s: %s", g.name, self.endpoint, e)
                    _shutdown(sock)
                    sock.close()
                    with g._cv:
                        g._cv.wait_for(self._stop, timeout=backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, o.retry_max)
                    continue
                backoff = o.retry_min
                link = _Link(g, conn, ext, self)
                with g._cv:
                    if self._stop():
                        conn.close()
                        break
                    self.link = link
                    g._links.add(link)
                    g._cv.notify_all()
                reader = threading.Thread(target=link.read_loop, name=f"tiltai-{g.name}-read", daemon=True)
                reader.start()
                if g.pattern in ("push", "pair"):
                    link.write_loop(self._stop)
                elif g.pattern == "pub":
                    link.pub_loop(lambda: self._stop())
                else:  # req: callers write; wait for the link to end
                    with g._cv:
                        g._cv.wait_for(lambda: link.closed or self._stop())
                if not link.closed:
                    self._drain(link)
                    link.fail(ConnectionError("peer removed"))
                reader.join()
                with g._cv:
                    self.link = None
        finally:
            self.done.set()

    def _drain(self, link: _Link) -> None:
        """Wait until the peer has acknowledged everything in flight; past
        the deadline, what is not acknowledged is re-routed (link.fail)."""
        g = self.gate
        deadline = getattr(self, "deadline", time.monotonic() + g.opt.drain_timeout)
        with g._cv:
            if g.pattern == "pub":
                g._cv.wait_for(lambda: link.closed or not link.pubq, timeout=_remaining(deadline))
            elif g.pattern == "req":
                g._cv.wait_for(lambda: link.closed or not link.busy, timeout=_remaining(deadline))
            else:
                g._cv.wait_for(lambda: link.closed or (not link.unacked and not link.writing), timeout=_remaining(deadline))


class Gate:
    """A named gate of a :class:`~tiltai.Hub`; open it with ``hub.out(name)`` or ``hub.in_(name)``."""

    def __init__(self, hub: Hub, spec: GateSpec):
        self._hub = hub
        self.name, self.dir, self.pattern = spec.name, spec.dir, spec.pattern
        self.spec = spec
        self.opt: Options = hub.opt
        self._cv = threading.Condition(threading.Lock())
        self._ctr = {"sent": 0, "received": 0, "dropped": 0, "rerouted": 0, "refused": 0}
        self._closed = False
        self._closing = False
        self._links: set[_Link] = set()
        self._peers: dict[str, _Peer] = {}
        self._sq: collections.deque[Message] = collections.deque()  # push, pair: to send
        self._sq_bytes = 0
        self._rq: collections.deque[tuple[Any, int]] = collections.deque()  # pull, sub, pair, rep: received
        self._rq_bytes = 0
        self._rr = 0  # req: round robin position
        self._topics: set[bytes] = set()  # sub
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._draining = False
        self._drained = False
        self.bound = ""

    def __repr__(self) -> str:
        return f"<Gate {self.name} {self.dir} {self.pattern}{' ' + self.bound if self.bound else ''}>"

    def _count(self, k: str, n: int = 1) -> None:
        with self._cv:
            self._ctr[k] += n

    def _need(self, *patterns: str) -> None:
        if self.pattern not in patterns:
            raise PatternError(f"gate {self.name!r} is a {self.pattern} gate (this needs {' or '.join(patterns)})")

    def _requeue(self, msgs: list[Message]) -> None:
        """Put msgs back at the head of the send queue, counted as re-routed (lock held)."""
        if msgs:
            self._sq.extendleft(reversed(msgs))
            self._sq_bytes += sum(_msg_size(m) for m in msgs)
            self._ctr["rerouted"] += len(msgs)

    def _link_closed(self, link: _Link) -> None:
        # Lock held.
        self._links.discard(link)
        if self.pattern in ("push", "pair"):
            self._requeue(link.take_unacked())
        elif self.pattern == "pub":
            self._ctr["dropped"] += len(link.pubq)
            link.pubq.clear()
            link.pubq_bytes = 0
        elif self.pattern == "req" and link.busy and link.abandoned:
            link.busy = False

    # --- sending ----------------------------------------------------------

    def send(self, *parts: bytes, timeout: float | None = None) -> None:
        """Send one message of one or more parts (pub: the first part is the topic).

        Push and pair block while the queue is full (``TimeoutError`` after
        timeout seconds); pub never blocks (a full subscriber queue drops,
        counted). The parts are copied (as bytes) before this returns.
        """
        self.send_batch([parts], timeout=timeout)

    def send_msg(self, msg: Sequence[bytes], timeout: float | None = None) -> None:
        self.send_batch([msg], timeout=timeout)

    def send_batch(self, msgs: Iterable[Sequence[bytes]], timeout: float | None = None) -> int:
        """Queue many messages; returns how many were queued.

        Every message is checked first and none is sent if one fails. On a
        timeout (push, pair) ``TimeoutError`` is raised with the count queued
        so far in its ``queued`` attribute.
        """
        self._need("push", "pair", "pub")
        ms = [_check_msg(m, self.opt) for m in msgs]
        if self.pattern == "pub":
            self._publish(ms)
            return len(ms)
        o = self.opt
        deadline = _deadline(timeout)
        n = 0
        with self._cv:
            while n < len(ms):
                if self._closed or self._closing:
                    raise Closed(f"gate {self.name!r} is closed")
                free = o.queue_len - len(self._sq)
                if free <= 0 or (self._sq and self._sq_bytes + _msg_size(ms[n]) > o.queue_bytes):
                    left = _remaining(deadline)
                    if left is not None and left <= 0:
                        e = TimeoutError(f"gate {self.name!r}: queue full (no peer, or every peer busy); {n} of {len(ms)} queued")
                        e.queued = n  # type: ignore[attr-defined]
                        raise e
                    self._cv.wait(left)
                    continue
                while n < len(ms) and free > 0:
                    s = _msg_size(ms[n])
                    if self._sq and self._sq_bytes + s > o.queue_bytes:
                        break
                    self._sq.append(ms[n])
                    self._sq_bytes += s
                    free -= 1
                    n += 1
                self._cv.notify_all()
        return n

    def _publish(self, ms: list[Message]) -> None:
        o = self.opt
        with self._cv:
            if self._closed or self._closing:
                raise Closed(f"gate {self.name!r} is closed")
            subs = [lk for lk in self._links if lk.active and not lk.closed]
            if not subs:
                self._ctr["dropped"] += len(ms)
                return
            for m in ms:
                for lk in subs:
                    if not lk.subscribed(m[0]):
                        continue
                    s = _msg_size(m)
                    if len(lk.pubq) >= o.queue_len or (lk.pubq and lk.pubq_bytes + s > o.queue_bytes):
                        self._ctr["dropped"] += 1
                        continue
                    lk.pubq.append(m)
                    lk.pubq_bytes += s
            self._cv.notify_all()

    # --- receiving --------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Message:
        """The next message (a tuple of bytes parts); blocks up to timeout seconds.

        Raises ``Drained`` after the last message once the gate is drained,
        ``Closed`` once closed, ``TimeoutError`` on timeout.
        """
        b = self.recv_batch(1, timeout)
        return b[0]

    def recv_batch(self, max_msgs: int = 256, timeout: float | None = None) -> list[Message]:
        """Wait for one message, then take up to max_msgs that have arrived."""
        self._need("pull", "sub", "pair")
        return self._take(max_msgs, timeout)

    def recv_request(self, timeout: float | None = None) -> Request:
        """The next request of a rep gate; answer it with ``req.reply(...)``."""
        self._need("rep")
        return self._take(1, timeout)[0]

    def _take(self, max_msgs: int, timeout: float | None) -> list[Any]:
        deadline = _deadline(timeout)
        with self._cv:
            while not self._rq:
                if self._closed:
                    raise Closed(f"gate {self.name!r} is closed")
                if self._drained:
                    raise Drained(f"gate {self.name!r} is drained")
                left = _remaining(deadline)
                if left is not None and left <= 0:
                    raise TimeoutError(f"gate {self.name!r}: nothing received within {timeout}s")
                self._cv.wait(left)
            out = []
            q = self._rq
            freed = 0
            while q and len(out) < max_msgs:
                it, cost = q.popleft()
                out.append(it)
                freed += cost
            self._rq_bytes -= freed
            self._ctr["received"] += len(out)
            self._cv.notify_all()
            return out

    def messages(self, timeout: float | None = None):
        """Iterate over received messages until the gate is drained or closed."""
        while True:
            try:
                yield self.recv(timeout)
            except (Drained, Closed):
                return

    __iter__ = messages

    def queue(self) -> GateQueue:
        """A ``queue.Queue``-like view: put/get with block and timeout, qsize, empty, full."""
        return GateQueue(self)

    # --- request/reply ----------------------------------------------------

    def request(self, *parts: bytes, timeout: float | None = None) -> Message:
        """Send a request to an idle peer (round robin) and wait for its reply.

        Raises ``PeerLost`` if the peer went away first, ``TimeoutError`` when
        timeout passes (a reply arriving later is dropped, counted)."""
        self._need("req")
        m = _check_msg(parts, self.opt)
        deadline = _deadline(timeout)
        with self._cv:
            while True:
                if self._closed or self._closing:
                    raise Closed(f"gate {self.name!r} is closed")
                idle = sorted((lk for lk in self._links if not lk.busy and not lk.closed and not (lk.peer and lk.peer.retiring)),
                              key=lambda lk: lk.remote)
                if idle:
                    link = idle[self._rr % len(idle)]
                    self._rr += 1
                    break
                left = _remaining(deadline)
                if left is not None and left <= 0:
                    raise TimeoutError(f"gate {self.name!r}: no idle peer within {timeout}s")
                self._cv.wait(left)
            link.busy, link.reply, link.abandoned = True, None, False
        try:
            link.conn.write(wire.data_frame([m]) if link.ext else wire.plain((b"",) + m))
        except (OSError, ssl.SSLError) as e:
            link.fail(e)
            raise PeerLost(f"gate {self.name!r}: cannot send the request to {link.remote}: {e}") from None
        with self._cv:
            self._ctr["sent"] += 1
            while link.reply is None:
                if link.closed:
                    link.busy = False
                    raise PeerLost(f"gate {self.name!r}: {link.remote} went away before replying")
                left = _remaining(deadline)
                if left is not None and left <= 0:
                    link.abandoned = True
                    raise TimeoutError(f"gate {self.name!r}: no reply from {link.remote} within {timeout}s")
                self._cv.wait(left)
            r, link.reply, link.busy = link.reply, None, False
            self._ctr["received"] += 1
            self._cv.notify_all()
            return r

    # --- pub/sub ----------------------------------------------------------

    def subscribe(self, topic: bytes = b"") -> None:
        """Receive messages whose first part starts with topic (b'': all)."""
        self._sub(True, topic)

    def unsubscribe(self, topic: bytes = b"") -> None:
        self._sub(False, topic)

    def _sub(self, on: bool, topic: bytes) -> None:
        self._need("sub")
        with self._cv:
            (self._topics.add if on else self._topics.discard)(bytes(topic))
            links = list(self._links)
        for lk in links:
            self._send_subs(lk, on, [topic], False)

    def _send_subs(self, lk: _Link, on: bool, topics: list[bytes], sync: bool) -> None:
        if lk.ext:
            data = b"".join(wire.ext_frame(wire.KIND_SUB if on else wire.KIND_UNSUB, t) for t in topics)
            if sync:
                data += wire.ext_frame(wire.KIND_SYNC)
        else:
            data = b"".join(wire.plain((bytes((1 if on else 0,)) + t,)) for t in topics)
        if data:
            try:
                lk.conn.write(data)
            except (OSError, ssl.SSLError) as e:
                lk.fail(e)

    # --- peers (out-gates) --------------------------------------------------

    def _set_peers(self, peers: Iterable[str]) -> threading.Event:
        """Route to peers from now on; the event is set once every removed peer has drained."""
        want = set(peers)
        with self._cv:
            removed = [p for ep, p in self._peers.items() if ep not in want]
            added = [ep for ep in sorted(want) if ep not in self._peers]
            deadline = time.monotonic() + self.opt.drain_timeout
            for p in removed:
                del self._peers[p.endpoint]
                p.retire(deadline)
            for ep in added:
                p = _Peer(self, ep)
                self._peers[ep] = p
                p.thread.start()
        done = threading.Event()
        if not removed:
            done.set()
        else:
            def wait() -> None:
                for p in removed:
                    p.done.wait()
                done.set()
            threading.Thread(target=wait, name=f"tiltai-{self.name}-retire", daemon=True).start()
        return done

    # --- listening (in-gates) -----------------------------------------------

    def _listen(self) -> None:
        ep = parse_endpoint(self.spec.bind, bind=True)
        host, port = ep.addr()
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        ls = socket.socket(fam, socket.SOCK_STREAM)
        try:
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((host, port))
            ls.listen(128)
        except OSError as e:
            ls.close()
            raise OSError(e.errno, f"cannot bind gate {self.name!r} on {self.spec.bind}: {e.strerror}") from None
        self._listener = ls
        bhost, bport = ls.getsockname()[:2]
        if ep.host in ("", "*"):
            bhost = "0.0.0.0" if fam == socket.AF_INET else "::"
        self.bound = str(type(ep)(bhost, bport))
        t = threading.Thread(target=self._accept_loop, args=(ls,), name=f"tiltai-{self.name}-accept", daemon=True)
        self._threads.append(t)
        t.start()

    def _accept_loop(self, ls: socket.socket) -> None:
        ls.settimeout(1.0)
        while True:
            try:
                sock, addr = ls.accept()
            except socket.timeout:
                if self._closed or self._draining:
                    return
                continue
            except OSError:
                return
            remote = f"{addr[0]}:{addr[1]}"
            with self._cv:
                limit = 1 if self.pattern == "pair" else self.opt.max_conns
                refuse = self._closed or self._draining or len(self._links) + self._handshaking >= limit
                if not refuse:
                    self._handshaking += 1
            if refuse:
                self._count("refused")
                _shutdown(sock)
                sock.close()
                continue
            t = threading.Thread(target=self._serve, args=(sock, remote), name=f"tiltai-{self.name}-conn", daemon=True)
            t.start()

    _handshaking = 0

    def _serve(self, sock: socket.socket, remote: str) -> None:
        o = self.opt
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._hub._wrap_tls(sock, server=True, timeout=o.handshake_timeout)
            conn = _Conn(sock, remote)
            st = wire.SOCKET_TYPE[self.pattern]
            ext = conn.handshake(st, wire.COMPATIBLE[st], o.handshake_timeout)
        except (OSError, ProtocolError, ConnectionError, ssl.SSLError, ValueError) as e:
            with self._cv:
                self._handshaking -= 1
                self._ctr["refused"] += 1
                self._cv.notify_all()
            log.warning("refusing gate connection: gate=%s peer=%s: %s", self.name, remote, e)
            _shutdown(sock)
            sock.close()
            return
        link = _Link(self, conn, ext, None)
        with self._cv:
            self._handshaking -= 1
            if self._closed:
                conn.close()
                return
            self._links.add(link)
            self._cv.notify_all()
        topics = None
        if self.pattern == "sub":
            with self._cv:
                topics = sorted(self._topics)
            self._send_subs(link, True, topics, True)
        if self.pattern == "pair":
            w = threading.Thread(target=link.write_loop, args=(lambda: self._closed,), name=f"tiltai-{self.name}-write", daemon=True)
            w.start()
            link.read_loop()
            w.join()
        else:
            link.read_loop()

    def _drain(self, deadline: float) -> None:
        """In-gates: refuse new connections, keep reading the open ones until
        their peers close them or deadline; then Recv raises Drained once empty."""
        with self._cv:
            self._draining = True
        if self._listener is not None:
            _shutdown(self._listener)
            self._listener.close()
        with self._cv:
            self._cv.wait_for(lambda: not self._links and not self._handshaking, timeout=_remaining(deadline))
            links = list(self._links)
        for lk in links:
            lk.fail(ConnectionError("drain deadline passed"))
        with self._cv:
            self._drained = True
            self._cv.notify_all()

    # --- counters and close -------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The gate's counters, as the heartbeat carries them."""
        with self._cv:
            c: dict[str, Any] = {"pattern": self.pattern, "dir": self.dir, **self._ctr}
            c["queue_depth"] = len(self._sq) + len(self._rq) + sum(len(lk.pubq) for lk in self._links)
            c["in_flight"] = sum(lk.written - lk.acked for lk in self._links)
            c["peers"] = len(self._links)
            c["peers_wanted"] = len(self._peers) if self.dir == "out" else 0
        return c

    def close(self) -> None:
        """Close the gate. An out-gate first delivers what is queued and in
        flight (up to drain_timeout); what it could not is counted dropped and
        reported by ``Undelivered``. Idempotent."""
        with self._cv:
            if self._closed or self._closing:
                return
            self._closing = True
            self._cv.notify_all()
        undelivered = 0
        if self.dir == "out" or self.pattern == "pair":
            deadline = time.monotonic() + self.opt.drain_timeout

            def idle() -> bool:
                if self.pattern == "pub":
                    return all(not lk.pubq for lk in self._links)
                if self.pattern == "req":
                    return all(not lk.busy for lk in self._links)
                return not self._sq and all(not lk.unacked and not lk.writing for lk in self._links)
            with self._cv:
                self._cv.wait_for(idle, timeout=_remaining(deadline))
        with self._cv:
            self._closed = True
            peers = list(self._peers.values())
            self._peers.clear()
            for p in peers:
                p.retire(time.monotonic())
            links = list(self._links)
            self._cv.notify_all()
        if self._listener is not None:
            _shutdown(self._listener)
            self._listener.close()
        for lk in links:
            lk.fail(Closed("gate closed"))
        for p in peers:
            p.thread.join()
        for t in self._threads:
            t.join()
        with self._cv:
            undelivered = len(self._sq)
            self._sq.clear()
            self._sq_bytes = 0
            dropped_in = len(self._rq)
            self._rq.clear()
            self._rq_bytes = 0
            self._ctr["dropped"] += undelivered + dropped_in
            self._cv.notify_all()
        self._hub._forget(self)
        if undelivered and self.dir == "out":
            raise Undelivered(self.name, undelivered)


class GateQueue:
    """A ``queue.Queue``-like view of a gate (``put`` sends, ``get`` receives)."""

    def __init__(self, gate: Gate):
        self.gate = gate

    def put(self, item: bytes | Sequence[bytes], block: bool = True, timeout: float | None = None) -> None:
        import queue as _q
        parts = (item,) if isinstance(item, (bytes, bytearray, memoryview)) else tuple(item)
        try:
            self.gate.send_msg(parts, timeout=timeout if block else 0)
        except TimeoutError:
            raise _q.Full from None

    def put_nowait(self, item: bytes | Sequence[bytes]) -> None:
        self.put(item, block=False)

    def get(self, block: bool = True, timeout: float | None = None) -> Message:
        import queue as _q
        try:
            return self.gate.recv(timeout=timeout if block else 0)
        except TimeoutError:
            raise _q.Empty from None

    def get_nowait(self) -> Message:
        return self.get(block=False)

    def qsize(self) -> int:
        return self.gate.stats()["queue_depth"]

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        g = self.gate
        with g._cv:
            return len(g._sq) >= g.opt.queue_len
