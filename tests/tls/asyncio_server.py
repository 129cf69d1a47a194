#!/usr/bin/env python3
"""asyncio_server.py — Python's asyncio TLS echo server, the TLS tests' peer.

    asyncio_server.py PORT CERT KEY

Serves on 127.0.0.1:PORT with asyncio.start_server(ssl=...), ALPN h2 and http/1.1; each
line a client sends comes back prefixed with the ALPN protocol agreed ("h2: hello").
Runs until killed.
"""
import asyncio
import ssl
import sys


async def echo(reader, writer):
    alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
    while line := await reader.readline():
        writer.write(f"{alpn}: ".encode() + line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    server = await asyncio.start_server(echo, "127.0.0.1", port, ssl=ctx)
    async with server:
        await server.serve_forever()


asyncio.run(main())
