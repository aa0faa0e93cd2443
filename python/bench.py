"""Throughput of Python gates beside pyzmq PUSH→PULL, in one run.

    PYTHON=/usr/bin/python3 python/bench.py [-n 200000]

Each case moves N messages of 64 B and 1 KiB over loopback, sender and
receiver in separate processes or threads as noted; the gate cases use the
batch calls (send_batch of 64, recv_batch of 1024). Needs go (for the Go
peer) and python3-zmq (for the baseline).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tests.helpers import GoPeer, hub_in, hub_out  # noqa: E402


def py_to_py(n: int, size: int) -> float:
    hr, r = hub_in("pull")
    hs, s = hub_out("push", r.bound)
    msgs = [(b"x" * size,)] * 64
    t0 = time.perf_counter()

    def send():
        for _ in range(n // 64):
            s.send_batch(msgs)
    th = threading.Thread(target=send)
    th.start()
    got = 0
    while got < n // 64 * 64:
        got += len(r.recv_batch(1024))
    dt = time.perf_counter() - t0
    th.join()
    hs.close()
    hr.close()
    return got / dt


def py_to_go(n: int, size: int) -> float:
    go = GoPeer("-role", "bench-pull", "-n", str(n), "-size", str(size))
    hs, s = hub_out("push", go.bound())
    msgs = [(b"x" * size,)] * 64
    t0 = time.perf_counter()
    for _ in range(n // 64):
        s.send_batch(msgs)
    s.send_batch(msgs[: n % 64]) if n % 64 else None
    go.finish()
    dt = time.perf_counter() - t0
    hs.close()
    return n / dt


def go_to_py(n: int, size: int) -> float:
    hr, r = hub_in("pull")
    go = GoPeer("-role", "bench-push", "-peer", r.bound, "-n", str(n), "-size", str(size))
    got = len(r.recv_batch(1024))
    t0 = time.perf_counter()
    while got < n:
        got += len(r.recv_batch(1024))
    dt = time.perf_counter() - t0
    go.finish()
    hr.close()
    return n / dt


def pyzmq(n: int, size: int) -> float:
    import zmq
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    payload = b"x" * size
    t0 = time.perf_counter()

    def send():
        for _ in range(n):
            push.send(payload)
    th = threading.Thread(target=send)
    th.start()
    for _ in range(n):
        pull.recv()
    dt = time.perf_counter() - t0
    th.join()
    push.close()
    pull.close()
    ctx.term()
    return n / dt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("-rounds", type=int, default=3)
    args = ap.parse_args()
    cases = [("python gate -> python gate", py_to_py), ("python gate -> go gate", py_to_go),
             ("go gate -> python gate", go_to_py), ("pyzmq PUSH -> PULL", pyzmq)]
    print(f"load average {os.getloadavg()[0]:.1f}; {args.n} messages a case; median of {args.rounds} rounds")
    for size in (64, 1024):
        res: dict[str, list[float]] = {name: [] for name, _ in cases}
        for _ in range(args.rounds):
            for name, fn in cases:
                res[name].append(fn(args.n, size))
        base = sorted(res["pyzmq PUSH -> PULL"])[args.rounds // 2]
        for name, _ in cases:
            med = sorted(res[name])[args.rounds // 2]
            print(f"{size:5d} B  {name:28s} {med / 1e3:8.0f} k msg/s   {med / base:5.2f}x pyzmq")
    return 0


if __name__ == "__main__":
    sys.exit(main())
