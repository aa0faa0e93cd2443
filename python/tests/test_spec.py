"""Gate declarations, the TILTAI_* environment and snapshots."""

import unittest

from tiltai.spec import ConfigError, parse_endpoint, parse_env, parse_gate, parse_snapshot


class EnvTest(unittest.TestCase):
    def test_executor_env(self):
        env = parse_env({
            "TILTAI_CONTROL": "unix:///tmp/x/control.sock", "TILTAI_TASK_ID": "enc.1", "TILTAI_SERVICE": "enc",
            "TILTAI_GATE_PLAIN_TEXT": "pull@tcp://0.0.0.0:31001", "TILTAI_GATE_CIPHERTEXT": "push>", "HOME": "/",
        })
        self.assertEqual(env.control, "unix:///tmp/x/control.sock")
        self.assertEqual([(g.name, g.dir, g.pattern) for g in env.gates],
                         [("ciphertext", "out", "push"), ("plain-text", "in", "pull")])
        self.assertEqual(env.gates[1].bind, "tcp://0.0.0.0:31001")

    def test_static_peers(self):
        env = parse_env({"TILTAI_GATE_PLAINTEXT": "push>tcp://127.0.0.1:5555,tcp://[::1]:5556"})
        self.assertEqual(env.gates[0].peers, ("tcp://127.0.0.1:5555", "tcp://[::1]:5556"))

    def test_every_problem_listed(self):
        with self.assertRaises(ConfigError) as cm:
            parse_env({
                "TILTAI_CONTROL": "/tmp/x.sock", "TILTAI_GATE_A": "pull>tcp://h:1", "TILTAI_GATE_B": "push@tcp://h:1",
                "TILTAI_GATE_C": "push>tcp://h:0", "TILTAI_TLS_CERT": "/c", "TILTAI_GATE_x": "pull@tcp://*:0",
            })
        self.assertEqual(len(cm.exception.problems), 6, cm.exception.problems)

    def test_static_peers_with_control(self):
        with self.assertRaisesRegex(ConfigError, "static peers are not allowed"):
            parse_env({"TILTAI_CONTROL": "unix:///c.sock", "TILTAI_GATE_OUT": "push>tcp://h:1"})

    def test_endpoints(self):
        self.assertEqual(str(parse_endpoint("tcp://[::1]:80")), "tcp://[::1]:80")
        self.assertEqual(parse_endpoint("tcp://*:0", bind=True).addr(), ("", 0))
        for bad in ("udp://h:1", "tcp://h", "tcp://:1", "tcp://h:70000", "tcp://bad host:1", "tcp://h:0"):
            with self.subTest(bad), self.assertRaises(ValueError):
                parse_endpoint(bad)
        self.assertEqual(parse_gate("p", "pair@tcp://*:0").dir, "in")


class SnapshotTest(unittest.TestCase):
    def test_valid(self):
        s = parse_snapshot({"version": 7, "out": {"plaintext": {"pattern": "push", "peers": ["tcp://10.0.0.5:1", "tcp://10.0.0.6:1"]}}})
        self.assertEqual(s.peers("plaintext"), ("tcp://10.0.0.5:1", "tcp://10.0.0.6:1"))
        self.assertEqual(s.peers("other"), ())

    def test_invalid(self):
        cases = [
            {"version": 0, "out": {}},
            {"version": 1, "out": {"x": {"pattern": "pull", "peers": []}}},
            {"version": 1, "out": {"x": {"pattern": "push", "peers": ["tcp://b:1", "tcp://a:1"]}}},
            {"version": 1, "out": {"x": {"pattern": "pair", "peers": ["tcp://a:1", "tcp://b:1"]}}},
            {"version": 1, "out": {"X": {"pattern": "push", "peers": []}}},
            {"version": True, "out": {}},
        ]
        for c in cases:
            with self.subTest(c), self.assertRaises(ConfigError):
                parse_snapshot(c)


if __name__ == "__main__":
    unittest.main()
