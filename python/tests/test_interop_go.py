"""Interop with Go gates (python/gotest/gopeer), both directions, every pattern."""

import threading
import unittest

from tests.helpers import GoPeer, hub_in, hub_out, two_part, wait_for

N = 5000


class GoInteropTest(unittest.TestCase):
    def test_go_push_to_python_pull(self):
        h, g = hub_in("pull")
        with h:
            go = GoPeer("-role", "push", "-peer", g.bound, "-n", str(N))
            seen = set()
            while len(seen) < N:
                for m in g.recv_batch(512, timeout=30):
                    self.assertEqual(m, two_part(int(m[0][1:])))
                    self.assertNotIn(m[0], seen)
                    seen.add(m[0])
            self.assertIn("ok sent=5000 rerouted=0 dropped=0", go.finish())

    def test_python_push_to_go_pull(self):
        go = GoPeer("-role", "pull", "-n", str(N))
        try:
            h, g = hub_out("push", go.bound())
            with h:
                for i in range(N):
                    g.send(*two_part(i), timeout=30)
            self.assertEqual(g.stats()["sent"], N)
            self.assertEqual(g.stats()["rerouted"], 0)
            self.assertIn("ok received=5000", go.finish())
        finally:
            go.kill()

    def test_go_pub_to_python_sub(self):
        h, g = hub_in("sub")
        with h:
            g.subscribe(b"a")
            go = GoPeer("-role", "pub", "-peer", g.bound)
            try:
                for _ in range(50):
                    m = g.recv(timeout=30)
                    self.assertTrue(m[0].startswith(b"a"), m)
                    self.assertEqual(m[1], b"payload")
            finally:
                self.assertIn("ok", go.finish())  # closes its stdin

    def test_python_pub_to_go_sub(self):
        go = GoPeer("-role", "sub", "-topic", "a", "-n", "50")
        try:
            h, g = hub_out("pub", go.bound())
            with h:
                i = 0
                while go.p.poll() is None and i < 200000:
                    g.send(b"%s%d" % (b"ab"[i % 2:i % 2 + 1], i), b"payload")
                    i += 1
                    if i % 10 == 0:
                        threading.Event().wait(0.001)
            self.assertIn("ok received=50", go.finish())
        finally:
            go.kill()

    def test_go_req_to_python_rep(self):
        h, g = hub_in("rep")
        with h:
            go = GoPeer("-role", "req", "-peer", g.bound, "-n", "300")
            for _ in range(300):
                r = g.recv_request(timeout=30)
                r.reply(r[0], b"re:" + r[1])
            self.assertIn("ok requests=300", go.finish())

    def test_python_req_to_go_rep(self):
        go = GoPeer("-role", "rep", "-n", "300")
        try:
            h, g = hub_out("req", go.bound())
            with h:
                for i in range(300):
                    self.assertEqual(g.request(b"m%d" % i, b"q", timeout=30), (b"m%d" % i, b"re:q"))
            self.assertIn("ok replied=300", go.finish())
        finally:
            go.kill()

    def _pair_echo(self, g, n=2000):
        got = []

        def rx():
            while len(got) < n:
                got.extend(g.recv_batch(256, timeout=30))
        t = threading.Thread(target=rx)
        t.start()
        for i in range(n):
            g.send(*two_part(i), timeout=30)
        t.join()
        self.assertEqual(sorted(got, key=lambda m: int(m[0][1:])), [two_part(i) for i in range(n)])

    # gopeer's pair echoes, says "echoed N" once its echoes are acknowledged,
    # and closes its gate only when told (stdin closed): closing the Python
    # gate then waits for nothing but acknowledgements that are on their way.
    def test_python_pair_in_go_pair_out(self):
        h, g = hub_in("pair")
        with h:
            go = GoPeer("-role", "pair-out", "-peer", g.bound, "-n", "2000")
            try:
                self._pair_echo(g)
                go.expect("echoed 2000")
            except BaseException:
                go.kill()
                raise
        self.assertEqual((g.stats()["rerouted"], g.stats()["dropped"]), (0, 0))
        self.assertIn("ok received=2000", go.finish())

    def test_python_pair_out_go_pair_in(self):
        go = GoPeer("-role", "pair-in", "-n", "2000")
        try:
            h, g = hub_out("pair", go.bound())
            with h:
                self._pair_echo(g)
                go.expect("echoed 2000")
            self.assertEqual((g.stats()["rerouted"], g.stats()["dropped"]), (0, 0))
            self.assertIn("ok received=2000", go.finish())
        finally:
            go.kill()


if __name__ == "__main__":
    unittest.main()
