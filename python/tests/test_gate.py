"""Gate guarantees between Python gates: rewiring, drain, backpressure, dead peers, bad input."""

import socket
import struct
import threading
import time
import unittest

from tiltai import Drained, GateSpec, Hub, Options, PatternError, Snapshot, TooBigError, wire
from tests.helpers import hub_in, hub_out, wait_for


def collect(gates, into, dups, stop):
    def run(g):
        while not stop.is_set():
            try:
                for m in g.recv_batch(256, timeout=0.05):
                    with lock:
                        if m[0] in into:
                            dups.append(m[0])
                        into.add(m[0])
            except TimeoutError:
                continue
            except Exception:
                return
    lock = threading.Lock()
    ts = [threading.Thread(target=run, args=(g,)) for g in gates]
    for t in ts:
        t.start()
    return ts


class GateTest(unittest.TestCase):
    def test_rewire_applied_after_drain(self):
        ha, a = hub_in("pull")
        hb, b = hub_in("pull")
        hs, s = hub_out("push", a.bound)
        seen, dups, stop = set(), [], threading.Event()
        ts = collect([a, b], seen, dups, stop)
        try:
            self.assertTrue(hs.wait_applied(1, 5))
            n = 0
            for v, peers in ((2, (a.bound, b.bound)), (3, (b.bound,)), (4, (a.bound,)), (5, (a.bound, b.bound))):
                for _ in range(3000):
                    s.send(b"%d" % n)
                    n += 1
                hs.publish(Snapshot(v, {"g": ("push", tuple(sorted(peers)))}))
                self.assertTrue(hs.wait_applied(v, 15), f"version {v} not applied")
                if v == 3:
                    # Applied 3: a has acknowledged everything sent to it.
                    self.assertEqual(a.stats()["peers"], 0)
            hs.close()
            wait_for(lambda: len(seen) >= n, 15, "every message")
            self.assertEqual((len(seen), dups), (n, []))
            st = s.stats()
            self.assertEqual((st["sent"], st["rerouted"], st["dropped"]), (n, 0, 0))
        finally:
            stop.set()
            for t in ts:
                t.join()
            ha.close()
            hb.close()

    def test_backpressure(self):
        opt = Options(queue_len=100, queue_bytes=1 << 20, window=50)
        hr, r = hub_in("pull", options=opt)
        hs, s = hub_out("push", r.bound, options=opt)
        with hr, hs:
            with self.assertRaises(TimeoutError) as cm:
                for _ in range(100000):
                    s.send(b"x" * 1000, timeout=0.5)
            self.assertEqual(cm.exception.queued, 0)
            got = r.recv_batch(100000, timeout=1)
            self.assertGreater(len(got), 0)

    def test_dead_peer_rerouted(self):
        ha, a = hub_in("pull")
        hb, b = hub_in("pull")
        hs, s = hub_out("push", a.bound, b.bound)
        wait_for(lambda: s.stats()["peers"] == 2, 5, "two peers")
        for i in range(20000):
            s.send(b"%d" % i)
        ha.close()  # not drained: what a did not take is lost there; its unacked messages go to b
        seen, dups, stop = set(), [], threading.Event()
        ts = collect([b], seen, dups, stop)
        hs.close()
        stop.set()
        for t in ts:
            t.join()
        took = a.stats()["received"]
        self.assertGreaterEqual(len(seen) + a.stats()["dropped"] + took, 20000)
        hb.close()

    def test_drain(self):
        hr, r = hub_in("pull")
        hs, s = hub_out("push", r.bound)
        for i in range(1000):
            s.send(b"%d" % i)
        wait_for(lambda: s.stats()["sent"] == 1000, 10, "everything sent before the drain")
        th = threading.Thread(target=hr.drain, args=(10,))
        th.start()
        self.assertTrue(hr.draining.wait(5))
        hs.close()  # upstream closes its connection, as after a snapshot without r
        got = 0
        with self.assertRaises(Drained):
            while True:
                got += len(r.recv_batch(100, timeout=10))
        self.assertEqual(got, 1000)
        th.join()
        # A drained in-gate refuses new connections.
        h2, s2 = hub_out("push", r.bound)
        h2.close()
        hr.close()

    def test_pattern_and_size_errors(self):
        h, g = hub_in("pull", options=Options(max_message_size=10))
        with h:
            with self.assertRaises(PatternError):
                g.send(b"x")
        h, g = hub_out("push", "tcp://127.0.0.1:9", options=Options(max_message_size=10, drain_timeout=0.1))
        with self.assertRaises(TooBigError):
            g.send(b"x" * 11)
        with self.assertRaises(TooBigError):
            g.send()
        h.close()

    def test_hostile_input_refused(self):
        h, g = hub_in("pull")
        with h:
            host, port = g.bound[6:].rsplit(":", 1)

            def conn():
                c = socket.create_connection((host, int(port)))
                c.settimeout(5)
                return c

            def closed(c):
                try:
                    while c.recv(4096):
                        pass
                    return True
                except ConnectionResetError:
                    return True
            cases = {
                "http": b"GET / HTTP/1.1\r\n\r\n",
                "huge command": wire.greeting() + struct.pack(">BQ", wire.FLAG_COMMAND | wire.FLAG_LONG, 1 << 62),
                "huge frame": wire.greeting() + wire.ready("PUSH") + struct.pack(">BQ", wire.FLAG_LONG, 1 << 40),
                "reserved flags": wire.greeting() + wire.ready("PUSH") + b"\x80\x01x",
                "bad batch": wire.greeting() + wire.ready("PUSH") + wire.ext_frame(wire.KIND_DATA, b"\x01\x7fx"),
                "ack to pull": wire.greeting() + wire.ready("PUSH") + wire.ext_frame(wire.KIND_ACK, b"\x01"),
            }
            for i, (name, data) in enumerate(cases.items()):
                with self.subTest(name):
                    c = conn()
                    c.sendall(data)
                    self.assertTrue(closed(c))
                    c.close()
                    wait_for(lambda: g.stats()["refused"] >= i + 1, 5, f"{name} refused")
            # The gate still works.
            hs, s = hub_out("push", g.bound)
            with hs:
                s.send(b"fine")
                self.assertEqual(g.recv(timeout=5), (b"fine",))

    def test_pair_acknowledges_data_followed_by_an_ack(self):
        # A pair peer's data and its ack of our messages often arrive in one
        # read; the data must be acknowledged all the same, though nothing
        # more may come until it is.
        h, g = hub_in("pair")
        with h:
            host, port = g.bound[6:].rsplit(":", 1)
            c = socket.create_connection((host, int(port)))
            c.settimeout(5)
            fr = wire.FrameReader()

            def frame():
                while (f := fr.next(1 << 16)) is None:
                    fr.feed(c.recv(4096))
                return f
            c.sendall(wire.greeting() + wire.ready("PAIR"))
            while fr.take(wire.GREETING_LEN) is None:
                fr.feed(c.recv(4096))
            self.assertEqual(wire.parse_ready(frame()[1]), ("PAIR", True))
            c.sendall(wire.data_frame([(b"x",)]) + wire.ext_frame(wire.KIND_ACK, wire.uvarint(0)))
            self.assertEqual(frame(), (0, bytes((wire.KIND_ACK,)) + wire.uvarint(1)))
            self.assertEqual(g.recv(timeout=5), (b"x",))
            c.close()

    def test_silent_peer_times_out(self):
        h, g = hub_in("pull", options=Options(handshake_timeout=0.2))
        with h:
            host, port = g.bound[6:].rsplit(":", 1)
            c = socket.create_connection((host, int(port)))
            t0 = time.monotonic()
            c.settimeout(5)
            self.assertIn(c.recv(100)[:1], (b"\xff", b""))  # our greeting, then closed
            while c.recv(100):
                pass
            self.assertLess(time.monotonic() - t0, 3)
            c.close()
            wait_for(lambda: g.stats()["refused"] == 1, 5, "refused")

    def test_queue_view_and_static_env(self):
        hr, r = hub_in("pull")
        env = {"TILTAI_GATE_OUT": f"push>{r.bound}"}
        with hr, Hub.from_env(env) as hs:
            q = hs.out("out").queue()
            q.put(b"one")
            q.put((b"two", b"parts"))
            rq = r.queue()
            self.assertEqual(rq.get(timeout=5), (b"one",))
            self.assertEqual(rq.get(timeout=5), (b"two", b"parts"))
            import queue
            with self.assertRaises(queue.Empty):
                rq.get(timeout=0.01)

    def test_declarations_checked(self):
        from tiltai import ConfigError
        with self.assertRaises(ConfigError) as cm:
            Hub([GateSpec("a", "in", "push", bind="tcp://*:0"), GateSpec("a", "out", "pull"), GateSpec("B", "out", "push")])
        self.assertEqual(len(cm.exception.problems), 4, cm.exception.problems)


if __name__ == "__main__":
    unittest.main()
