"""What the Redis backend runs inside Redis for room history, and what it queues for it.

Pure data: the Lua scripts and the queued publication; ``redis.py`` runs them.
"""

from __future__ import annotations

__all__ = ["PUBLISH", "READ", "Publication"]


class Publication:
    """A queued publication to a room with history (see ``PUBLISH``)."""

    __slots__ = ("frame", "room", "size", "ttl_ms")

    def __init__(self, room: str, frame: bytes, size: int, ttl_ms: int) -> None:
        self.room = room
        self.frame = frame
        self.size = size
        self.ttl_ms = ttl_ms


# KEYS: stream, offset, epoch. ARGV: frame, maxlen, ttl in ms, a new epoch, the channel.
PUBLISH = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[1], KEYS[2])
end
local offset = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-1', 't', ms, 'f', ARGV[1])
redis.call('SET', KEYS[3], epoch, 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], '* ' .. offset .. ' ' .. epoch .. ' ' .. ARGV[1])
return offset
"""

# KEYS: stream, offset, epoch. ARGV: the first offset wanted, a new epoch, ttl in ms.
READ = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SET', KEYS[3], epoch, 'PX', ARGV[3])
end
local offset = tonumber(redis.call('GET', KEYS[2]) or '0')
local entries = redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', '+')
local now = redis.call('TIME')
return {epoch, offset, entries, now[1], now[2]}
"""
