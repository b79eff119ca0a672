"""The example chat: ``uvicorn example_chat.app:app`` (or ``make run``).

A browser chat on Bocadillo's public API only: usernames, rooms, presence, typing
indicators, the last messages of a room on join, and automatic reconnection. See
``docs/chat.md`` for the walk-through.
"""

from __future__ import annotations
