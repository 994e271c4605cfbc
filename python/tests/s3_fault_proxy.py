"""A fault-injecting HTTP proxy for S3 tests.

It sits between the client under test and a real S3-compatible server on 127.0.0.1 and,
for requests matching a rule, misbehaves the way networks and servers do:

- ``"503"``: answers ``503 Slow Down`` with an S3 error body instead of forwarding;
- ``"drop"``: reads the request, then closes the connection without answering;
- ``"cut"``: forwards the response head and half the body, then closes;
- ``"stall"``: forwards the head and half the body, then sends nothing for ``stall_s``;
- ``"delay"``: waits ``delay_s`` before forwarding.

A GET with ``If-Match`` whose object has another ETag now is answered ``412 Precondition
Failed`` as S3 answers it (the server behind ignores the header).

Rules are added from the test's thread (``proxy.fail(...)``) and count their hits, and every
request is logged (method, path, Range header, status), so tests can check both that a fault
really happened and what the client asked for. The proxy runs its own event loop in a daemon
thread; ``close()`` stops it. Only Content-Length and chunked bodies are understood, which is
all an S3 server sends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

ACTIONS = ("503", "drop", "cut", "stall", "delay")

PRECONDITION_FAILED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
    b"<Message>At least one of the pre-conditions you specified did not hold</Message></Error>"
)
PRECONDITION_HEAD = (
    b"HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/xml\r\n"
    + f"Content-Length: {len(PRECONDITION_FAILED)}\r\n\r\n".encode()
)

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Request:
    """What the proxy saw of one request."""

    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    fault: str | None = None

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass
class Rule:
    """Misbehave on requests for which ``match`` is true, ``times`` times (``None``: always)."""

    action: str
    match: Callable[[Request], bool]
    times: int | None = 1
    delay_s: float = 0.3
    stall_s: float = 5.0
    hits: int = 0

    def wants(self, request: Request) -> bool:
        return (self.times is None or self.hits < self.times) and self.match(request)


@dataclass
class FaultProxy:
    """The proxy; construct with :meth:`start`."""

    upstream_port: int
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    log: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.AbstractServer | None = None
    _thread: threading.Thread | None = None

    @classmethod
    def start(cls, upstream_port: int) -> FaultProxy:
        """Starts a proxy to ``127.0.0.1:upstream_port`` on a free loopback port."""
        proxy = cls(upstream_port)
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            proxy._loop = loop
            proxy._server = loop.run_until_complete(
                asyncio.start_server(proxy._serve, "127.0.0.1", 0)
            )
            proxy.port = proxy._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        proxy._thread = threading.Thread(target=run, name="s3-fault-proxy", daemon=True)
        proxy._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return proxy

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(
        self,
        action: str,
        match: Callable[[Request], bool] | str = "",
        times: int | None = 1,
        **kw: float,
    ) -> Rule:
        """Adds a rule; ``match`` is a predicate or a substring of the request path."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        if isinstance(match, str):
            needle = match

            def match(r: Request) -> bool:
                return needle in r.path

        rule = Rule(action, match, times, **kw)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Removes every rule and forgets the log."""
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def requests(self, pred: Callable[[Request], bool] = lambda r: True) -> list[Request]:
        with self._lock:
            return [r for r in self.log if pred(r)]

    def close(self) -> None:
        loop = self._loop
        if loop is None or self._server is None:
            return

        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def _pick(self, request: Request) -> Rule | None:
        with self._lock:
            self.log.append(request)
            for rule in self.rules:
                if rule.wants(request):
                    rule.hits += 1
                    request.fault = rule.action
                    return rule
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    return
                request_line, headers = head
                method, path, _ = request_line.split(" ", 2)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(method, path, headers)
                rule = self._pick(request)
                if rule is not None and rule.action == "503":
                    request.status = 503
                    writer.write(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(SLOW_DOWN)}\r\n\r\n".encode()
                        + SLOW_DOWN
                    )
                    await writer.drain()
                    continue
                if rule is not None and rule.action == "drop":
                    return
                if rule is not None and rule.action == "delay":
                    await asyncio.sleep(rule.delay_s)
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up_reader, up_writer = upstream
                up_writer.write(_raw_head(request_line, headers) + body)
                await up_writer.drain()
                response = await _read_response(up_reader, method)
                if response is None:
                    return
                status, response_headers, raw_head, raw_body, keep_alive = response
                if _precondition_fails(headers, status, response_headers):
                    status, raw_head, raw_body = 412, PRECONDITION_HEAD, PRECONDITION_FAILED
                request.status = status
                if rule is not None and rule.action in ("cut", "stall") and len(raw_body) > 1:
                    writer.write(raw_head + raw_body[: len(raw_body) // 2])
                    await writer.drain()
                    if rule.action == "stall":
                        await asyncio.sleep(rule.stall_s)
                    return
                writer.write(raw_head + raw_body)
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()


def _precondition_fails(request: dict[str, str], status: int, response: dict[str, str]) -> bool:
    """Whether S3 would answer 412 to a GET with ``If-Match`` that the server let through:
    the object's ETag is another now (the upstream server ignores the header). S3 checks the
    precondition before the range, so a range past the end of a replaced, shorter object is a
    412 too."""
    wanted = request.get("if-match")
    if wanted is None or wanted.strip() == "*":
        return False
    if status == 416:
        return True
    etag = response.get("etag")
    return 200 <= status < 300 and etag is not None and etag.strip('"') != wanted.strip('"')


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return lines[0], headers


def _raw_head(first_line: str, headers: dict[str, str]) -> bytes:
    text = first_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return text.encode("latin-1")


async def _read_response(
    reader: asyncio.StreamReader, method: str
) -> tuple[int, dict[str, str], bytes, bytes, bool] | None:
    head = await _read_head(reader)
    if head is None:
        return None
    status_line, headers = head
    status = int(status_line.split(" ", 2)[1])
    keep_alive = headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
        headers.pop("transfer-encoding")
        headers["content-length"] = str(len(body))
    else:
        body = await reader.read()
        keep_alive = False
        headers["content-length"] = str(len(body))
    return status, headers, _raw_head(status_line, headers), body, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)
