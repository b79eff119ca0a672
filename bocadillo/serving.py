"""The WebSocket protocol ``bocadillo run`` gives uvicorn: its own, plus write backpressure.

uvicorn answers every ping a client sends with a pong, and keeps reading while the
pongs pile up in its write buffer: a client that sends pings and never reads makes the
server buffer the pongs without bound (``docs/deployment.md`` has the measurement; the
``websockets`` server does the same). This subclass of uvicorn's protocol stops reading
from a connection while its write buffer is over the transport's high-water mark, and
reads again once it drains: a client that does not read can then no longer make the server
write, and its pings wait in its own socket buffers.

Reading is paused for two reasons, each with its own flag: uvicorn's (a message waits for
the app) and ours (the write buffer is full). It resumes only when neither holds.
"""

from __future__ import annotations

from typing import Any

__all__ = ["websocket_protocol"]

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - uvicorn before 0.35 has no sans-I/O protocol
    _BASE: Any = None
else:
    _BASE = WebSocketsSansIOProtocol


if _BASE is not None:

    class BackpressuredWebSocketProtocol(_BASE):  # type: ignore[misc]
        """uvicorn's sans-I/O WebSocket protocol that stops reading while it cannot write.

        Defined at module level so that ``--workers`` can pickle the configuration.
        """

        write_paused = False

        def pause_writing(self) -> None:
            super().pause_writing()
            self.write_paused = True
            self.transport.pause_reading()

        def resume_writing(self) -> None:
            super().resume_writing()
            self.write_paused = False
            if not getattr(self, "read_paused", False) and not self.transport.is_closing():
                self.transport.resume_reading()

        async def receive(self) -> Any:
            message = await super().receive()
            # uvicorn resumes reading once the app has taken every queued message;
            # a full write buffer keeps it paused.
            if self.write_paused and not self.transport.is_closing():
                self.transport.pause_reading()
            return message


def websocket_protocol() -> Any:
    """The protocol class for ``uvicorn.Config(ws=...)``, or ``"auto"`` when this uvicorn
    has no sans-I/O ``websockets`` protocol to extend (uvicorn before 0.35)."""
    if _BASE is None:  # pragma: no cover - older uvicorn
        return "auto"
    return BackpressuredWebSocketProtocol
