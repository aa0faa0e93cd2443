"""The asyncio flavour: the same gates, awaited.

``AsyncGate`` wraps a :class:`~tiltai.Gate`; each call first tries without
blocking, and only waits in a worker thread when it must (a full queue, an
empty one, a request in flight), so the event loop never blocks::

    hub = Hub.from_env()
    inp, out = aio.wrap(hub.in_("plaintext")), aio.wrap(hub.out("ciphertext"))
    async for m in inp:
        await out.send(m[0], m[1], digest(m[2]))
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator, Iterable, Sequence

from .errors import Closed, Drained
from .gate import Gate, Request
from .wire import Message

#: How long one worker-thread wait lasts before the loop is consulted again
#: (so a cancelled task frees its thread within this time).
_SLICE = 0.25


def wrap(gate: Gate) -> AsyncGate:
    return AsyncGate(gate)


class AsyncGate:
    def __init__(self, gate: Gate):
        self.gate = gate

    async def _call(self, fn: Any, *args: Any, timeout: float | None, **kw: Any) -> Any:
        try:
            return fn(*args, timeout=0, **kw)
        except TimeoutError:
            pass
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            left = _SLICE if deadline is None else min(_SLICE, deadline - loop.time())
            if left <= 0:
                raise TimeoutError(f"gate {self.gate.name!r}: timed out")
            try:
                return await loop.run_in_executor(None, functools.partial(fn, *args, timeout=left, **kw))
            except TimeoutError:
                continue

    async def send(self, *parts: bytes, timeout: float | None = None) -> None:
        await self._call(self.gate.send_batch, [parts], timeout=timeout)

    async def send_batch(self, msgs: Iterable[Sequence[bytes]], timeout: float | None = None) -> int:
        msgs = list(msgs)
        sent = 0
        while sent < len(msgs):
            try:
                sent += self.gate.send_batch(msgs[sent:], timeout=0)
            except TimeoutError as e:
                sent += getattr(e, "queued", 0)
                await self._call(self.gate.send_batch, [msgs[sent]], timeout=timeout)
                sent += 1
        return sent

    async def recv(self, timeout: float | None = None) -> Message:
        return (await self._call(self.gate.recv_batch, 1, timeout=timeout))[0]

    async def recv_batch(self, max_msgs: int = 256, timeout: float | None = None) -> list[Message]:
        return await self._call(self.gate.recv_batch, max_msgs, timeout=timeout)

    async def recv_request(self, timeout: float | None = None) -> Request:
        return await self._call(self.gate.recv_request, timeout=timeout)

    async def request(self, *parts: bytes, timeout: float | None = None) -> Message:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self.gate.request, *parts, timeout=timeout))

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Message]:
        while True:
            try:
                batch = await self.recv_batch(256)
            except (Drained, Closed):
                return
            for m in batch:
                yield m
