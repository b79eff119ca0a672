"""The benchmark targets: tiny apps that do the same job, one module per framework.

Every app serves:

- ``GET /json``: ``{"message": "Hello, world!"}``;
- ``WS /echo``: echoes each text frame;
- ``WS /fanout``: registers the client for broadcasts (``?stalled=1`` also marks it as
  one of the clients that will never read, for ``/fill``);
- ``POST /broadcast?seq=N``: sends one ~100-byte JSON text frame to every ``/fanout``
  client, the way a typical user of the framework would write it;
- ``POST /fill?size=S&count=K``: set-up only, never measured: queues ``K`` frames of
  ``S`` bytes for the stalled clients, without waiting for them, so that their TCP
  buffers are full before the measured broadcasts start.
"""
