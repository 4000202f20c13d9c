#!/usr/bin/env python3
"""2,000 concurrent streaming completions through the real `openai` SDK (AsyncOpenAI), all open at
once against one `moeserve serve`: every stream completes with its tokens, usage and [DONE], while
the server's thread count stays bounded (read from /proc: no thread per connection) and its open
descriptors show the streams were concurrent. Prints the numbers.
  openai_concurrency_test.py --moeserve BIN --source DIR   (MOESERVE_OPENAI_STREAMS: N, default 2000)
"""

import asyncio
import os
import resource
import sys
import time
import unittest

import httpx2
import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from openai_test_util import Server, parse_args  # noqa: E402

ARGS = None
MAX_TOKENS = 16


class ConcurrencyTest(unittest.TestCase):
    def test_thousands_of_streams_with_a_bounded_thread_count(self):
        n = ARGS.streams
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < n + 200:
            self.skipTest(f"the open-files hard limit {hard} is below {n} streams")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        # One Python event loop opens every connection at once; on a loaded machine it can take
        # longer than the default 10 s header timeout (which closes a silent connection) between
        # a connect and that connection's request. Concurrency is under test here, not that timeout.
        server = Server(ARGS.moeserve, os.path.join(ARGS.source, "models", "default"),
                        "--max-queued-requests", str(2 * n), "--max-num-seqs", "256",
                        "--http-header-timeout", "300")
        try:
            idle_threads = server.threads()
            peak = {"threads": idle_threads, "fds": 0}
            stop = asyncio.Event()

            async def sample():
                while not stop.is_set():
                    peak["threads"] = max(peak["threads"], server.threads())
                    peak["fds"] = max(peak["fds"], len(os.listdir(f"/proc/{server.pid}/fd")))
                    await asyncio.sleep(0.05)

            async def one(client, i):
                stream = await client.completions.create(
                    model="default", prompt=f"Once upon a time {i}", max_tokens=MAX_TOKENS,
                    temperature=0, stream=True, stream_options={"include_usage": True},
                    extra_body={"ignore_eos": True})
                ids, finish, usage = set(), None, None
                async for chunk in stream:
                    ids.add(chunk.id)
                    for c in chunk.choices:
                        finish = c.finish_reason or finish
                    usage = chunk.usage or usage
                return len(ids), finish, usage.completion_tokens if usage else None

            async def run():
                limits = httpx2.Limits(max_connections=n + 16, max_keepalive_connections=n + 16)
                async with openai.AsyncOpenAI(
                        base_url=server.base_url(), api_key="x", max_retries=0, timeout=600,
                        http_client=openai.DefaultAsyncHttpxClient(limits=limits)) as client:
                    sampler = asyncio.create_task(sample())
                    start = time.time()
                    results = await asyncio.gather(*(one(client, i) for i in range(n)),
                                                   return_exceptions=True)
                    seconds = time.time() - start
                    stop.set()
                    await sampler
                    return results, seconds

            results, seconds = asyncio.run(run())
            errors = [r for r in results if isinstance(r, BaseException)]
            self.assertEqual(errors[:3], [])
            self.assertEqual(results.count((1, "length", MAX_TOKENS)), n)
            print(f"{n} concurrent streams completed in {seconds:.1f} s; server threads: "
                  f"{idle_threads} idle, {peak['threads']} at most; open descriptors at most "
                  f"{peak['fds']}", file=sys.stderr)
            # Concurrent: most streams were open at the same time ...
            self.assertGreater(peak["fds"], n // 2)
            # ... and connections cost no threads: a handful may start lazily, never one each.
            self.assertLessEqual(peak["threads"], idle_threads + 8)
            m = server.wait_idle()
            self.assertEqual(m["moeserve_kv_cache_blocks_used"], 0)
            self.assertGreaterEqual(m['moeserve_requests_total{finish_reason="length"}'], n)
        finally:
            self.assertEqual(server.stop(), 0, server.log())


def main():
    global ARGS
    ARGS, rest = parse_args("--moeserve", "--source")
    ARGS.streams = int(os.environ.get("MOESERVE_OPENAI_STREAMS", "2000"))
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
