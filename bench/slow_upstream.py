"""The fake OpenAI upstream, with a default reply that streams slowly.

The memory measurement needs 1,000 streams really open *inside the gateway*. With the fake's
default reply (no delay, ~1 KB) the gateway finishes each stream into the socket buffers at
once, however slowly the client reads, so holding client connections would hold nothing in the
gateway. Here every unscripted request gets a long reply with a pause between words, so the
gateway keeps its upstream connection, its relay generator and its reservation alive until the
client goes away. Everything else is tests/fakes/openai_upstream.py unchanged.

    python -m bench.slow_upstream --port 9100 --words 120 --chunk-delay 0.5
"""

import argparse

from aiohttp import web

from tests.fakes.openai_upstream import FakeOpenAI, Reply


class SlowFakeOpenAI(FakeOpenAI):
    def __init__(self, *, words: int, chunk_delay: float):
        super().__init__(record=False)  # no request log: it would only grow
        self.slow_reply = Reply(text=" ".join(["word"] * words), chunk_delay=chunk_delay)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        if not self.script:
            self.enqueue(self.slow_reply)
        return await super().chat_completions(request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--words", type=int, default=120)
    parser.add_argument("--chunk-delay", type=float, default=0.5, help="Seconds between words.")
    args = parser.parse_args()
    fake = SlowFakeOpenAI(words=args.words, chunk_delay=args.chunk_delay)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=2048)


if __name__ == "__main__":
    main()
