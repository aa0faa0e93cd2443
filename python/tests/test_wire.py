"""The ZMTP codec and the extension's batches, including hostile input."""

import struct
import unittest

from tiltai import wire
from tiltai.wire import FrameReader, ProtocolError


class GreetingTest(unittest.TestCase):
    def test_ours_is_valid(self):
        g = wire.greeting()
        self.assertEqual(len(g), 64)
        wire.check_greeting(g)

    def test_refused(self):
        good = wire.greeting()
        cases = {
            "http": b"GET / HTTP/1.1\r\n".ljust(64, b"x"),
            "byte 9": good[:9] + b"\x00" + good[10:],
            "zmtp 2": good[:10] + b"\x02" + good[11:],
            "curve": good[:12] + b"CURVE".ljust(20, b"\x00") + good[32:],
        }
        for name, g in cases.items():
            with self.subTest(name), self.assertRaises(ProtocolError):
                wire.check_greeting(g)
        with self.assertRaises(ProtocolError):
            wire.check_greeting_prefix(b"G")


class ReadyTest(unittest.TestCase):
    def test_round_trip(self):
        r = FrameReader()
        r.feed(wire.ready("PUSH"))
        fl, body = r.next(wire.MAX_HANDSHAKE_CMD)
        self.assertTrue(fl & wire.FLAG_COMMAND)
        self.assertEqual(wire.parse_ready(body), ("PUSH", True))
        r.feed(wire.ready("PULL", ext=False))
        self.assertEqual(wire.parse_ready(r.next(1 << 16)[1]), ("PULL", False))

    def test_truncated_metadata(self):
        body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 1 << 30) + b"PUSH"
        with self.assertRaises(ProtocolError):
            wire.parse_ready(body)
        for bad in (b"\x05READY\x00", b"\x05READY\x0bSocket", b"\x09READY", b"\x05READY"):
            with self.subTest(bad), self.assertRaises(ProtocolError):
                wire.parse_ready(bad)

    def test_error_command(self):
        with self.assertRaisesRegex(ProtocolError, "refused"):
            wire.parse_ready(b"\x05ERROR\x03bad")


class FrameReaderTest(unittest.TestCase):
    def test_split_anywhere(self):
        data = wire.plain((b"a", b"b" * 300, b"")) + wire.data_frame([(b"x",), (b"y", b"z")])
        for cut in range(len(data)):
            r = FrameReader()
            frames = []
            for chunk in (data[:cut], data[cut:]):
                r.feed(chunk)
                while (f := r.next(1 << 20)) is not None:
                    frames.append(f)
            self.assertEqual([b for _, b in frames][:3], [b"a", b"b" * 300, b""])
            self.assertEqual(wire.decode_batch(frames[3][1], 1 << 20), [(b"x",), (b"y", b"z")])

    def test_oversized_refused_from_header(self):
        # A 2^62-byte frame is refused from its 9-byte header: nothing waits for the body.
        r = FrameReader()
        r.feed(struct.pack(">BQ", wire.FLAG_LONG, 1 << 62))
        with self.assertRaisesRegex(ProtocolError, "exceeds"):
            r.next(4 << 20)

    def test_reserved_flags(self):
        r = FrameReader()
        r.feed(b"\x80\x00")
        with self.assertRaises(ProtocolError):
            r.next(100)


class BatchTest(unittest.TestCase):
    def test_round_trip(self):
        msgs = [(b"",), (b"a" * 200, b"b" * 70000), tuple(bytes([i]) for i in range(10))]
        body = wire.data_frame(msgs)
        r = FrameReader()
        r.feed(body)
        _, b = r.next(1 << 20)
        self.assertEqual(wire.decode_batch(b, 1 << 20), msgs)

    def test_hostile(self):
        cases = {
            "zero parts": b"D\x00",
            "too many parts": b"D" + wire.uvarint(2000),
            "length past end": b"D\x01" + wire.uvarint(1 << 40) + b"x",
            "truncated varint": b"D\x01\xff",
            "overlong varint": b"D\x01" + b"\xff" * 11,
        }
        for name, b in cases.items():
            with self.subTest(name), self.assertRaises(ProtocolError):
                wire.decode_batch(b, 1 << 20)
        with self.assertRaisesRegex(ProtocolError, "more than 10"):
            wire.decode_batch(b"D\x01\x0b" + b"x" * 11, 10)

    def test_uvarint(self):
        for v in (0, 1, 127, 128, 300, 1 << 35, (1 << 64) - 1):
            self.assertEqual(wire.read_uvarint(wire.uvarint(v), 0), (v, len(wire.uvarint(v))))


if __name__ == "__main__":
    unittest.main()
