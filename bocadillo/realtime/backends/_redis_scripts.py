"""What the Redis backend runs inside Redis (room history, frames for connections), and
what it queues for it.

Pure data: the Lua scripts and the queued items; ``redis.py`` runs them. Every script
touches the keys and channels of one hash tag only (see ``_redis_layout.py``).
"""

from __future__ import annotations

__all__ = ["DIRECT", "PUBLISH", "READ", "Direct", "Message", "Publication", "sharded"]


class Message:
    """A queued message for one channel (everyone's, a room's, a node's inbox)."""

    __slots__ = ("channel", "data")

    def __init__(self, channel: str, data: bytes) -> None:
        self.channel = channel
        self.data = data


class Direct:
    """A queued message for the processes holding ``conns``: ``partition`` is theirs when
    they share one (one ``DIRECT`` script), else ``None`` (the writer looks their nodes
    up first)."""

    __slots__ = ("conns", "data", "partition")

    def __init__(self, conns: tuple[str, ...], data: bytes, partition: int | None) -> None:
        self.conns = conns
        self.data = data
        self.partition = partition


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

# KEYS: the partition's conns hash. ARGV: the partition's inbox prefix, the message, then
# connection ids of that partition. Publishes the message once to the inbox of each node
# holding one of them; returns how many nodes.
DIRECT = """
local seen = {}
local sent = 0
for i = 3, #ARGV do
  local node = redis.call('HGET', KEYS[1], ARGV[i])
  if node and not seen[node] then
    seen[node] = true
    redis.call('PUBLISH', ARGV[1] .. node, ARGV[2])
    sent = sent + 1
  end
end
return sent
"""


def sharded(script: str) -> str:
    """``script`` with its ``PUBLISH`` calls made ``SPUBLISH`` (sharded pub/sub, for Redis
    Cluster): each publishes to a channel in the slot of the script's keys."""
    return script.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
