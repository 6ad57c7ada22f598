"""The floor to compare the gateway against: a pass-through proxy that does nothing else.

No key check, no plan, no usage record: it forwards POST /v1/chat/completions to the upstream
with the upstream's key and streams the answer back as it arrives. Whatever the gateway costs
beyond this is the price of what it does. Same event loop (uvloop) and pool size as the gateway.

    python -m bench.bare_proxy --port 9200 --upstream http://127.0.0.1:9100/v1 --upstream-key sk-...
"""

import argparse
import asyncio

import aiohttp
import uvloop
from aiohttp import web


def build_app(upstream: str, upstream_key: str) -> web.Application:
    async def open_session(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))

    async def close_session(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {"Authorization": f"Bearer {upstream_key}", "Content-Type": "application/json"}
        async with request.app["session"].post(f"{upstream}/chat/completions", data=await request.read(),
                                               headers=headers) as upstream_response:
            response = web.StreamResponse(status=upstream_response.status,
                                          headers={"Content-Type": upstream_response.content_type})
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", forward)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app


async def serve(port: int, upstream: str, upstream_key: str) -> None:
    runner = web.AppRunner(build_app(upstream, upstream_key), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()  # until the harness terminates the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="Base URL ending in /v1.")
    parser.add_argument("--upstream-key", default="sk-fake-upstream")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.port, args.upstream, args.upstream_key))


if __name__ == "__main__":
    main()
