"""Interop with plain ZeroMQ (pyzmq on libzmq): plain ZMTP both ways, every pattern."""

import threading
import unittest

from tests.helpers import hub_in, hub_out

try:
    import zmq
except ImportError:  # python/test.sh says so loudly
    zmq = None

N = 3000


@unittest.skipIf(zmq is None, "pyzmq is not installed (apt-get install python3-zmq): libzmq interop NOT tested")
class ZmqInteropTest(unittest.TestCase):
    def setUp(self):
        self.ctx = zmq.Context()
        self.addCleanup(self.ctx.destroy, 0)

    def sock(self, kind, bind=False):
        s = self.ctx.socket(kind)
        self.addCleanup(s.close, 0)
        s.setsockopt(zmq.LINGER, 2000)
        s.setsockopt(zmq.RCVTIMEO, 20000)
        if bind:
            port = s.bind_to_random_port("tcp://127.0.0.1")
            return s, f"tcp://127.0.0.1:{port}"
        return s

    def test_zmq_push_to_gate_pull(self):
        h, g = hub_in("pull")
        with h:
            s = self.sock(zmq.PUSH)
            s.connect(g.bound)
            for i in range(N):
                s.send_multipart([b"%d" % i, b"x" * (i % 100)])
            got = [g.recv(timeout=20) for _ in range(N)]
            self.assertEqual(got, [(b"%d" % i, b"x" * (i % 100)) for i in range(N)])
            s.close()

    def test_gate_push_to_zmq_pull(self):
        s, addr = self.sock(zmq.PULL, bind=True)
        h, g = hub_out("push", addr)
        with h:
            for i in range(N):
                g.send(b"%d" % i, b"y")
            got = [tuple(s.recv_multipart()) for _ in range(N)]
        self.assertEqual(got, [(b"%d" % i, b"y") for i in range(N)])
        self.assertEqual(g.stats()["in_flight"], 0)  # no acks from a plain peer: nothing tracked

    def test_zmq_pub_to_gate_sub(self):
        h, g = hub_in("sub")
        with h:
            g.subscribe(b"a")
            s = self.sock(zmq.PUB)
            s.connect(g.bound)
            stop = threading.Event()

            def pub():
                i = 0
                while not stop.wait(0.001):
                    s.send_multipart([b"ab"[i % 2:i % 2 + 1] + b"%d" % i, b"p"])
                    i += 1
            t = threading.Thread(target=pub)
            t.start()
            try:
                for _ in range(30):
                    self.assertTrue(g.recv(timeout=20)[0].startswith(b"a"))
            finally:
                stop.set()
                t.join()
                s.close()

    def test_gate_pub_to_zmq_sub(self):
        s, addr = self.sock(zmq.SUB, bind=True)
        s.setsockopt(zmq.SUBSCRIBE, b"b")
        h, g = hub_out("pub", addr)
        with h:
            got = []
            done = threading.Event()

            def rx():
                while len(got) < 30:
                    got.append(s.recv_multipart())
                done.set()
            t = threading.Thread(target=rx)
            t.start()
            i = 0
            while not done.wait(0.001) and i < 100000:
                g.send(b"ab"[i % 2:i % 2 + 1] + b"%d" % i, b"p")
                i += 1
            t.join()
        self.assertTrue(all(m[0].startswith(b"b") for m in got))

    def test_zmq_req_to_gate_rep(self):
        h, g = hub_in("rep")
        with h:
            s = self.sock(zmq.REQ)
            s.connect(g.bound)

            def serve():
                for _ in range(200):
                    r = g.recv_request(timeout=20)
                    r.reply(b"re:" + r[0])
            t = threading.Thread(target=serve)
            t.start()
            for i in range(200):
                s.send(b"%d" % i)
                self.assertEqual(s.recv(), b"re:%d" % i)
            t.join()
            s.close()

    def test_zmq_dealer_to_gate_rep_pipelined(self):
        h, g = hub_in("rep")
        with h:
            s = self.sock(zmq.DEALER)
            s.connect(g.bound)
            for i in range(50):
                s.send_multipart([b"", b"%d" % i])
            reqs = [g.recv_request(timeout=20) for _ in range(50)]
            for r in reversed(reqs):  # out of order
                r.reply(b"re:" + r[0])
            got = sorted(s.recv_multipart()[1] for _ in range(50))
            self.assertEqual(got, sorted(b"re:%d" % i for i in range(50)))
            s.close()

    def test_gate_req_to_zmq_rep(self):
        s, addr = self.sock(zmq.REP, bind=True)
        h, g = hub_out("req", addr)

        def serve():
            for _ in range(200):
                s.send_multipart([b"re:" + p for p in s.recv_multipart()])
        t = threading.Thread(target=serve)
        t.start()
        with h:
            for i in range(200):
                self.assertEqual(g.request(b"%d" % i, b"x", timeout=20), (b"re:%d" % i, b"re:x"))
        t.join()

    def test_pair_both_ways(self):
        h, g = hub_in("pair")
        with h:
            s = self.sock(zmq.PAIR)
            s.connect(g.bound)
            for i in range(100):
                s.send(b"%d" % i)
                self.assertEqual(g.recv(timeout=20), (b"%d" % i,))
                g.send(b"back%d" % i)
                self.assertEqual(s.recv(), b"back%d" % i)
            s.close()
        s, addr = self.sock(zmq.PAIR, bind=True)
        h, g = hub_out("pair", addr)
        with h:
            g.send(b"hello", b"there")
            self.assertEqual(s.recv_multipart(), [b"hello", b"there"])
            s.send(b"reply")
            self.assertEqual(g.recv(timeout=20), (b"reply",))

    def test_incompatible_socket_refused(self):
        h, g = hub_in("pull")
        with h:
            s = self.sock(zmq.PULL)  # PULL to PULL: refused at the handshake
            s.connect(g.bound)
            deadline = threading.Event()
            for _ in range(400):
                if g.stats()["refused"] > 0:
                    break
                deadline.wait(0.01)
            self.assertGreater(g.stats()["refused"], 0)
            s.close()


if __name__ == "__main__":
    unittest.main()
