"""HTTP bad input against a real uvicorn: every bad request gets a 4xx, never a 500.

Malformed JSON bodies answer 400 (docs/routing.md: "an invalid body answers 400"), wrong
parameter types answer 400 naming each bad parameter, over-long headers and bodies
neither crash the server nor answer 5xx, and a session cookie that was tampered with
gives an empty session: never an error page, never the forged data. Afterwards the
server still serves, and has logged nothing but uvicorn's warnings about requests it
could not parse.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any

import pytest
from itsdangerous import TimestampSigner

from .harness import ServerProcess, record_figures, size

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

#: uvicorn's answer to a request it cannot parse (logged as a warning).
UNPARSABLE_LOG = r"^WARNING:\s+Invalid HTTP request received\.$"
VALID = {"type": "note", "items": [1, 2.5, "three", None, True], "nested": {"a": {"b": []}}}


def malformed_bodies(rng: random.Random) -> list[bytes]:
    text = json.dumps(VALID)
    bodies = [
        b"",
        b" ",
        b"{not json",
        b"{'single': 'quotes'}",
        b'{"a": 1,}',
        b'{"a": 01}',
        b'{"a": .5}',
        b"undefined",
        b"\xff\xfe\xfd",
        b'{"a": "\xc3"}',
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"9" * 5_000,
        b"-" + b"1" * 10_000,
        b'{"a": ' + b"7" * 4_301 + b"}",
        b"NaN",
        b'{"a": Infinity}',
        b"[-Infinity]",
        b"1e999",
        b'{"a": -1e400}',
        b'{"a": 1}{"b": 2}',
        b'"unterminated',
        b"\x00",
        b'{"a": "tab\there"}',
    ]
    # Every proper prefix of a valid document, and random mutations of it.
    bodies += [text[:cut].encode() for cut in range(len(text))]
    for _ in range(size(100, 2_000)):
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice("{}[]\",:'\\x")
        mutated = "".join(chars)
        try:
            json.loads(mutated)
        except ValueError:
            bodies.append(mutated.encode())
    return bodies


async def raw_request(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new TCP connection; return what the server answers (the head)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


async def check_bodies(server: ServerProcess) -> int:
    bodies = malformed_bodies(random.Random(7))
    for body in bodies:
        response = await server.request(
            "POST", "/items/1", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (body[:80], response.text[:200])
        error = response.json()
        assert (error["error"], error["status"]) == ("Bad Request", 400)
        assert error["detail"].startswith("Invalid JSON body"), error
        assert "Traceback" not in response.text
    # Valid documents still work, large ones included.
    big = json.dumps([VALID] * 20_000).encode()
    for body, kind in [(json.dumps(VALID).encode(), "dict"), (b"[]", "list"), (big, "list")]:
        response = await server.request("POST", "/items/1", content=body)
        assert response.json() == {"pk": 1, "limit": 10, "kind": kind}
    return len(bodies)


async def check_parameters(server: ServerProcess) -> int:
    cases: list[tuple[str, dict[str, str]]] = [
        ("/items/abc", {"pk": "expected an integer"}),
        ("/items/1.5x", {"pk": "expected an integer"}),
        ("/items/1e3", {"pk": "expected an integer"}),
        ("/items/%20", {"pk": "expected an integer"}),
        ("/items/1?limit=ten", {"limit": "expected an integer"}),
        ("/items/1?limit=", {"limit": "expected an integer"}),
        ("/items/1?limit=0x10", {"limit": "expected an integer"}),
        ("/items/1?limit=%00", {"limit": "expected an integer"}),
        ("/items/1?limit=" + "9" * 5_000, {"limit": "expected an integer of at most 4300 digits"}),
        ("/items/x?limit=y", {"pk": "expected an integer", "limit": "expected an integer"}),
        ("/login", {"user": "missing required query parameter"}),
    ]
    for path, detail in cases:
        method = "POST" if path.startswith("/login") else "GET"
        response = await server.request(method, path)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["detail"] == detail, path
    ok = await server.request("GET", "/items/7?limit=3")
    assert ok.json() == {"pk": 7, "limit": 3}
    return len(cases)


async def check_oversize(server: ServerProcess) -> int:
    port = server.port
    heads = [
        # One header of 1 MB, 10,000 headers, a 100 kB and a 1 MB request target.
        b"GET /state HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
        b"GET /state HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
        + b"\r\n",
        b"GET /state?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /state?" + b"q" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /state HTTP/1.1\r\nHost: x\r\nCookie: " + b"s=" + b"c" * 500_000 + b"\r\n\r\n",
        # Not HTTP at all, and a bad Content-Length.
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"POST /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ]
    for head in heads:
        status = status_of(await raw_request(port, head))
        assert status < 500 and status in (200, 400, 413, 414, 431), (head[:60], status)
    # Bodies: 32 MB of valid JSON, 32 MB of invalid JSON, 64 MB streamed (chunked).
    mb = 1024 * 1024
    body = b"[" + b" " * (32 * mb) + b"1]"
    response = await server.request("POST", "/items/2", content=body)
    assert response.json() == {"pk": 2, "limit": 10, "kind": "list"}
    response = await server.request("POST", "/items/2", content=b"{" + b" " * (32 * mb))
    assert response.status_code == 400

    async def chunks() -> Any:
        for _ in range(64):
            yield b"z" * mb

    response = await server.request("POST", "/upload", content=chunks())
    assert response.json() == {"size": 64 * mb}
    return len(heads) + 3


def tampered_cookies(valid: str, secret: str) -> list[str]:
    payload, _, signature = valid.partition(".")
    forged = base64.b64encode(json.dumps({"user": "admin"}).encode()).decode()
    flipped = "A" if payload[0] != "A" else "B"
    cookies = [
        "",
        "garbage",
        "....",
        "🍪",
        valid[:-1],
        valid[: len(valid) // 2],
        valid + "x",
        flipped + valid[1:],
        # The signature's second-to-last character: the last one's low bits are base64
        # padding, so changing only those would leave the signature intact.
        valid[:-2] + ("A" if valid[-2] != "A" else "B") + valid[-1],
        f"{forged}.{signature}",  # the admin payload with ann's signature
        f"{forged}.{valid.rsplit('.', 2)[1]}.{valid.rsplit('.', 1)[1]}",
        forged,
        # Signed properly, but with another key.
        TimestampSigner("another key").sign(forged).decode(),
        TimestampSigner(secret + " ").sign(forged).decode(),
        "x" * 50_000,
        # (A cookie signed with the right key around a payload that is not base64 JSON
        # answers 500: Starlette's SessionMiddleware decodes it without a guard. Only
        # the key's holder can make one, so it is no tampering and not tested here.)
    ]
    return cookies


async def check_sessions(server: ServerProcess) -> int:
    login = await server.request("POST", "/login", params={"user": "ann"})
    valid = login.cookies["session"]
    ok = await server.request("GET", "/session", headers={"cookie": f"session={valid}"})
    assert ok.json() == {"user": "ann"}
    cookies = tampered_cookies(valid, "reliability secret")
    for cookie in cookies:
        header = f"session={cookie}".encode()  # raw bytes: the emoji is not ASCII
        response = await server.request("GET", "/session", headers={b"cookie": header})
        assert response.status_code == 200, (cookie[:60], response.text[:200])
        assert response.json() == {}, cookie[:60]
    return len(cookies)


@pytest.mark.timeout(size(120, 600))
async def test_bad_http_input_gets_4xx_and_never_an_error(serve):
    asyncio.get_running_loop().set_debug(False)
    server = serve()
    await server.wait_ready()
    tried = {
        "malformed_bodies": await check_bodies(server),
        "bad_parameters": await check_parameters(server),
        "oversized_requests": await check_oversize(server),
        "tampered_cookies": await check_sessions(server),
    }
    assert (await server.state())["count"] == 0
    assert server.alive
    unparsable = server.assert_clean_log(tolerated={UNPARSABLE_LOG: 10})[UNPARSABLE_LOG]
    record_figures("http_bad_input", {**tried, "uvicorn_unparsable_warnings": unparsable})
