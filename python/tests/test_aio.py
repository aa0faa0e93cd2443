"""The asyncio flavour."""

import asyncio
import unittest

from tiltai import aio
from tests.helpers import hub_in, hub_out


class AioTest(unittest.TestCase):
    def test_push_pull_and_reqrep(self):
        hr, r = hub_in("pull")
        hs, s = hub_out("push", r.bound)
        hp, rep = hub_in("rep")
        hq, req = hub_out("req", rep.bound)

        async def main():
            ar, as_ = aio.wrap(r), aio.wrap(s)
            await as_.send_batch([(b"%d" % i,) for i in range(1000)])
            got = []
            async for m in ar:
                got.append(m)
                if len(got) == 1000:
                    break
            self.assertEqual(got, [(b"%d" % i,) for i in range(1000)])
            with self.assertRaises(TimeoutError):
                await ar.recv(timeout=0.1)

            async def serve():
                r = await aio.wrap(rep).recv_request(timeout=5)
                r.reply(b"re:" + r[0])
            t = asyncio.create_task(serve())
            self.assertEqual(await aio.wrap(req).request(b"q", timeout=5), (b"re:q",))
            await t
        with hr, hs, hp, hq:
            asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
