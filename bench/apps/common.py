"""What every target sends: the JSON body, the broadcast payload and the fill frames."""

from __future__ import annotations

import json

__all__ = ["HELLO", "broadcast_data", "broadcast_text", "fill_text"]

HELLO = {"message": "Hello, world!"}
_PAD = "x" * 72


def broadcast_text(seq: int) -> str:
    """The broadcast frame (about 100 bytes): the load generator reads ``seq`` back."""
    return json.dumps({"seq": seq, "pad": _PAD}, separators=(",", ":"))


def broadcast_data(seq: int) -> dict[str, int | str]:
    """The same payload as data, for a broadcast the hub encodes (in an envelope on the
    message-type endpoint): the load generator finds ``"seq":`` in it."""
    return {"seq": seq, "pad": _PAD}


def fill_text(size: int) -> str:
    """A frame of ``size`` bytes that fills a stalled client's buffers (set-up only)."""
    return "f" * max(1, size)
