#!/usr/bin/env python3
"""A loopback link of a given speed: forwards TCP connections from a local port to an upstream
one, every connection sharing one budget of bytes per second in each direction (as clients
behind one network link do). Usage: throttle.py LISTEN_PORT UPSTREAM_PORT MIB_PER_SECOND.
Prints "ready" once it listens; runs until killed."""
import asyncio
import sys
import time

CHUNK = 64 * 1024


class Link:
    """A token bucket shared by every connection in one direction."""

    def __init__(self, rate):
        self.rate = rate
        self.next_free = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, n):
        async with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / self.rate
            wait = self.next_free - now
        if wait > 0:
            await asyncio.sleep(wait)


async def pipe(reader, writer, link):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            await link.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    listen, upstream, mib = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    down, up = Link(mib * 1048576), Link(mib * 1048576)

    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w, up), pipe(server_r, client_w, down))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
