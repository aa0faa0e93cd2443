"""ZMTP 3.0 (NULL mechanism) framing and the Tiltai extension, as pure functions.

Nothing here touches a socket: the greeting and READY are built and checked
from bytes, and :class:`FrameReader` turns bytes fed to it into frames,
refusing reserved flags and oversized frames from the header alone, before any
body byte is held. The same rules as the Go gates apply to every peer.
"""

from __future__ import annotations

import struct
from typing import Iterable, Sequence

FLAG_MORE = 0x01
FLAG_LONG = 0x02
FLAG_COMMAND = 0x04
FLAG_RESERVED = 0xF8

GREETING_LEN = 64
#: Bounds a command frame during the handshake (READY with metadata is tiny).
MAX_HANDSHAKE_CMD = 64 << 10
#: Bounds the parts of one message.
MAX_FRAMES_PER_MSG = 1024

EXT_PROPERTY = "X-Tiltai"
EXT_VERSION = "1"

KIND_DATA = ord("D")  # a batch of messages
KIND_ACK = ord("A")  # uvarint: cumulative messages received on this connection
KIND_SUB = ord("S")  # subscribe to the topic that follows
KIND_UNSUB = ord("U")  # unsubscribe
KIND_SYNC = ord("Y")  # all current subscriptions have been sent

#: ZMTP socket types a gate of each pattern announces, and those it accepts.
SOCKET_TYPE = {
    "push": "PUSH", "pull": "PULL", "pub": "PUB", "sub": "SUB",
    "req": "REQ", "rep": "REP", "pair": "PAIR",
}
COMPATIBLE = {
    "PUSH": {"PULL"}, "PULL": {"PUSH"}, "PUB": {"SUB", "XSUB"}, "SUB": {"PUB", "XPUB"},
    "REQ": {"REP", "ROUTER"}, "REP": {"REQ", "DEALER"}, "PAIR": {"PAIR"},
}

Message = tuple[bytes, ...]


class ProtocolError(Exception):
    """A peer broke the wire protocol; its connection is dropped and counted as refused."""


def greeting() -> bytes:
    """Our greeting: ZMTP 3.0, NULL mechanism, as-server 0."""
    return b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def check_greeting(b: bytes) -> None:
    """Raise ProtocolError unless b (64 bytes) is a ZMTP 3.x greeting for NULL."""
    if len(b) != GREETING_LEN:
        raise ProtocolError(f"greeting of {len(b)} bytes (want {GREETING_LEN})")
    if b[0] != 0xFF:
        raise ProtocolError(f"not a ZMTP greeting (first byte {b[0]:#x})")
    if b[9] != 0x7F:
        raise ProtocolError(f"not a ZMTP greeting (byte 9 is {b[9]:#x})")
    if b[10] < 3:
        raise ProtocolError(f"ZMTP version {b[10]} (need 3)")
    if b[12:32] != b"NULL".ljust(20, b"\x00"):
        raise ProtocolError("security mechanism is not NULL")


def check_greeting_prefix(b: bytes) -> None:
    """Check the bytes of a greeting received so far, so garbage is refused early."""
    if len(b) > 0 and b[0] != 0xFF:
        raise ProtocolError(f"not a ZMTP greeting (first byte {b[0]:#x})")
    if len(b) > 9 and b[9] != 0x7F:
        raise ProtocolError(f"not a ZMTP greeting (byte 9 is {b[9]:#x})")
    if len(b) > 10 and b[10] < 3:
        raise ProtocolError(f"ZMTP version {b[10]} (need 3)")


def frame_header(flags: int, size: int) -> bytes:
    if size > 255:
        return struct.pack(">BQ", flags | FLAG_LONG, size)
    return bytes((flags, size))


def frame(flags: int, body: bytes) -> bytes:
    return frame_header(flags, len(body)) + body


def command(name: str, body: bytes = b"") -> bytes:
    n = name.encode()
    return frame(FLAG_COMMAND, bytes((len(n),)) + n + body)


def properties(props: dict[str, str]) -> bytes:
    out = bytearray()
    for k, v in props.items():
        kb, vb = k.encode(), v.encode()
        out += bytes((len(kb),)) + kb + struct.pack(">I", len(vb)) + vb
    return bytes(out)


def ready(socket_type: str, ext: bool = True) -> bytes:
    """A READY command announcing socket_type (and the extension)."""
    props = {"Socket-Type": socket_type, "Identity": ""}
    if ext:
        props[EXT_PROPERTY] = EXT_VERSION
    return command("READY", properties(props))


def parse_properties(b: bytes) -> dict[str, str]:
    """ZMTP metadata: repeated name-length(1) name value-length(4) value, bounds-checked."""
    props: dict[str, str] = {}
    i = 0
    while i < len(b):
        n = b[i]
        if n == 0 or len(b) - i < 1 + n + 4:
            raise ProtocolError("truncated READY metadata")
        k = b[i + 1:i + 1 + n].decode("latin-1")
        (vlen,) = struct.unpack_from(">I", b, i + 1 + n)
        i += 1 + n + 4
        if vlen > len(b) - i:
            raise ProtocolError(f"READY property {k[:40]!r} declares {vlen} bytes, {len(b) - i} left")
        props[k] = b[i:i + vlen].decode("latin-1")
        i += vlen
    return props


def split_command(body: bytes) -> tuple[str, bytes]:
    """A command frame's name and data."""
    if len(body) == 0 or body[0] > len(body) - 1:
        raise ProtocolError("malformed command frame")
    n = body[0]
    return body[1:1 + n].decode("latin-1"), body[1 + n:]


def parse_ready(body: bytes) -> tuple[str, bool]:
    """The peer's socket type and whether it speaks the extension, from a READY frame body."""
    name, data = split_command(body)
    if name == "ERROR":
        raise ProtocolError(f"peer refused the handshake: {data[:200]!r}")
    if name != "READY":
        raise ProtocolError(f"expected READY, got command {name[:40]!r}")
    st, ext = "", False
    for k, v in parse_properties(data).items():
        kl = k.lower()
        if kl == "socket-type":
            st = v
        elif kl == EXT_PROPERTY.lower():
            ext = v == EXT_VERSION
    if not st:
        raise ProtocolError("peer READY has no Socket-Type")
    return st, ext


def uvarint(v: int) -> bytes:
    if v < 0x80:
        return bytes((v,))
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def read_uvarint(b: bytes | memoryview, i: int) -> tuple[int, int]:
    """Decode a uvarint at b[i:]; returns (value, next index). Raises ProtocolError."""
    v = shift = 0
    n = len(b)
    while True:
        if i >= n or shift > 63:
            raise ProtocolError("malformed uvarint")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            if v >= 1 << 64:
                raise ProtocolError("uvarint overflows 64 bits")
            return v, i
        shift += 7


def encode_msgs(msgs: Iterable[Sequence[bytes]]) -> bytes:
    """The body of a data batch after its kind byte."""
    out = bytearray()
    for m in msgs:
        out += uvarint(len(m))
        for p in m:
            out += uvarint(len(p))
            out += p
    return bytes(out)


def data_frame(msgs: Iterable[Sequence[bytes]]) -> bytes:
    """One extension data frame holding msgs."""
    body = encode_msgs(msgs)
    return frame_header(0, 1 + len(body)) + b"D" + body


def ext_frame(kind: int, body: bytes = b"") -> bytes:
    return frame_header(0, 1 + len(body)) + bytes((kind,)) + body


def plain(msg: Sequence[bytes]) -> bytes:
    """msg as a plain ZMTP multipart message."""
    out = bytearray()
    last = len(msg) - 1
    for i, p in enumerate(msg):
        out += frame_header(FLAG_MORE if i < last else 0, len(p))
        out += p
    return bytes(out)


def decode_batch(b: bytes, max_msg: int, start: int = 1) -> list[Message]:
    """Parse a data batch body (from start: after the kind byte) into messages.

    Every length is checked against what is left before it is used, and each
    message's payload against max_msg.
    """
    mv = memoryview(b)
    out: list[Message] = []
    i, n = start, len(b)
    while i < n:
        k, i = read_uvarint(b, i)
        if k == 0 or k > MAX_FRAMES_PER_MSG:
            raise ProtocolError("bad part count in batch")
        size = 0
        parts = []
        for _ in range(k):
            ln, i = read_uvarint(b, i)
            if ln > n - i:
                raise ProtocolError("bad part length in batch")
            size += ln
            if size > max_msg:
                raise ProtocolError(f"message of more than {max_msg} bytes in batch")
            parts.append(bytes(mv[i:i + ln]))
            i += ln
        out.append(tuple(parts))
    return out


class FrameReader:
    """Incremental ZMTP frame parser over bytes fed from a connection.

    ``next(max_size)`` returns ``(flags, body)`` once a whole frame is
    buffered, ``None`` if more bytes are needed. The header is checked
    (reserved flags, declared size against max_size) before the body is
    waited for, so a hostile size never makes anything allocate.
    """

    __slots__ = ("buf", "pos")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0

    def feed(self, data: bytes) -> None:
        if self.pos and self.pos >= len(self.buf) // 2:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def buffered(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int) -> bytes | None:
        """n raw bytes (the greeting), or None if fewer are buffered."""
        if len(self.buf) - self.pos < n:
            return None
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return b

    def peek(self) -> bytes:
        return bytes(self.buf[self.pos:])

    def next(self, max_size: int) -> tuple[int, bytes] | None:
        buf, pos = self.buf, self.pos
        have = len(buf) - pos
        if have < 2:
            return None
        fl = buf[pos]
        if fl & FLAG_RESERVED:
            raise ProtocolError(f"frame flags {fl:#x} have reserved bits set")
        if fl & FLAG_LONG:
            if have < 9:
                return None
            (size,) = struct.unpack_from(">Q", buf, pos + 1)
            hdr = 9
        else:
            size = buf[pos + 1]
            hdr = 2
        if size > max_size:
            raise ProtocolError(f"frame of {size} bytes exceeds the {max_size}-byte limit")
        if have < hdr + size:
            return None
        body = bytes(buf[pos + hdr:pos + hdr + size])
        self.pos = pos + hdr + size
        return fl, body
