"""A real Redis Cluster for the tests: ``redis-server --cluster-enabled yes`` processes on
loopback ports, joined by ``redis-cli --cluster create``.

Each node holds two ports the way ``tests/redis_server.py`` holds one (see its docstring):
its client port and its cluster bus port (``--cluster-port``; by default Redis would take
the client port + 10000, which nobody reserved). A node keeps its ``nodes.conf`` in its
working directory, so a node killed and started again rejoins the cluster as the replica
of whoever took over its slots.

``LocalRedisCluster`` starts the nodes (by default 3 masters with one replica each),
waits until every node agrees on a healthy cluster, moves a slot or kills a master for
the failover tests, and kills every node then starts them all again for the outage
tests. The node timeout is low (1 s by default) so that a failover takes a few seconds,
not the 15 s of Redis's default. With ``flavor="valkey"`` the nodes are
``valkey-server`` processes (``tests/redis_server.py``), still joined by ``redis-cli``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.redis_server import Flavor, RedisServer, reserve_port

__all__ = ["ClusterNodeServer", "LocalRedisCluster", "NodeView"]

#: Slots of a Redis Cluster.
SLOTS = 16384


class ClusterNodeServer(RedisServer):
    """One ``redis-server`` in cluster mode on 127.0.0.1: its client port and its cluster
    bus port are reserved at creation; ``close()`` gives both back.

    Args:
        workdir: Its working directory (``redis.log`` and ``nodes.conf`` there).
        node_timeout_ms: ``cluster-node-timeout``: how long a silent master is waited for
            before its replica takes over.
        flavor: Which server program runs.
    """

    def __init__(self, workdir: Path, *, node_timeout_ms: int, flavor: Flavor = "redis") -> None:
        super().__init__(workdir, flavor=flavor)
        self.node_timeout_ms = node_timeout_ms
        self._bus_reservation = reserve_port()
        self.bus_port: int = self._bus_reservation.getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def arguments(self) -> list[str]:
        return [
            *super().arguments(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.workdir / "nodes.conf"),
            "--cluster-port",
            str(self.bus_port),
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # A replica takes over however long ago it last heard from its master.
            "--cluster-replica-validity-factor",
            "0",
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ]  # fmt: skip

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            decode_responses=True,
            socket_timeout=5.0,
            socket_connect_timeout=2.0,
        )

    def command(self, *args: str | int) -> object:
        """Run one command on this node and return its (decoded) reply."""
        client = self._client()
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def raw_command(self, *args: str | int) -> object:
        """Like ``command``, without redis-py's reply parsing (for ``CLUSTER NODES`` and
        ``INFO``, which redis-py turns into dicts)."""
        client = self._client()
        try:
            connection = client.connection_pool.get_connection()
            try:
                connection.send_command(*args)  # type: ignore[no-untyped-call]
                return connection.read_response()
            finally:
                client.connection_pool.release(connection)
        finally:
            client.close()

    def close(self) -> None:
        super().close()
        self._bus_reservation.close()


@dataclass
class NodeView:
    """One line of ``CLUSTER NODES``: a node as some node sees it."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: set[int] = field(default_factory=set)

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def parse_nodes(text: str) -> list[NodeView]:
    """Parse the reply of ``CLUSTER NODES`` (slots being imported or migrated, written
    ``[slot->-id]``, are skipped)."""
    views = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        node_id, address, flags, master = parts[:4]
        port = int(address.split("@", 1)[0].rsplit(":", 1)[1])
        slots: set[int] = set()
        for item in parts[8:]:
            if item.startswith("["):
                continue
            first, _, last = item.partition("-")
            slots.update(range(int(first), int(last or first) + 1))
        views.append(
            NodeView(
                id=node_id,
                port=port,
                flags=frozenset(flags.split(",")),
                master_id=None if master == "-" else master,
                slots=slots,
            )
        )
    return views


class LocalRedisCluster:
    """A Redis Cluster of real ``redis-server`` (or ``valkey-server``) processes on 127.0.0.1.

    Args:
        workdir: Where each node gets its working directory.
        masters: Masters (holding the slots, spread evenly by ``redis-cli``).
        replicas: Replicas per master.
        node_timeout_ms: ``cluster-node-timeout`` of every node.
        flavor: Which server program every node runs.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        flavor: Flavor = "redis",
    ) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError(
                "redis-cli is not installed (Debian package 'redis-tools'; .ci/run installs "
                "it): the Redis Cluster tests need it to create the cluster"
            )
        self.cli = cli
        self.flavor = flavor
        self.masters = masters
        self.replicas = replicas
        self.nodes: list[ClusterNodeServer] = []
        try:
            for index in range(masters * (1 + replicas)):
                self.nodes.append(
                    ClusterNodeServer(
                        workdir / f"node{index}", node_timeout_ms=node_timeout_ms, flavor=flavor
                    )
                )
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """The hub backend URL naming every node as a seed."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def start(self, timeout: float = 60.0) -> None:
        """Start every node, create the cluster, and wait until it is healthy."""
        for node in self.nodes:
            node.start()
        result = subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}"
            )
        self.wait_healthy(timeout)

    def close(self) -> None:
        """Stop every node and give their ports back."""
        for node in self.nodes:
            node.close()

    # Topology ----------------------------------------------------------------------------

    def running_nodes(self) -> list[ClusterNodeServer]:
        return [node for node in self.nodes if node.running]

    def node_at(self, port: int) -> ClusterNodeServer:
        for node in self.nodes:
            if node.port == port:
                return node
        raise LookupError(f"no node of this cluster on port {port}")

    def view(self, node: ClusterNodeServer | None = None) -> list[NodeView]:
        """``CLUSTER NODES`` as ``node`` (by default the first running one) sees it."""
        node = node or self.running_nodes()[0]
        reply = node.raw_command("CLUSTER", "NODES")
        assert isinstance(reply, str)
        return parse_nodes(reply)

    def owner(self, slot: int) -> ClusterNodeServer:
        """The master serving ``slot``, as the first running node sees it."""
        for view in self.view():
            if view.is_master and slot in view.slots:
                return self.node_at(view.port)
        raise LookupError(f"slot {slot} is not served")

    def master_ports(self) -> list[int]:
        return sorted(view.port for view in self.view() if view.is_master and view.slots)

    def problems(self) -> list[str]:
        """Why the cluster is not healthy now (empty when it is): every running node
        says ``cluster_state:ok`` with every slot served by a running master, sees every
        other running node as healthy, agrees with the others on who serves each slot,
        and every running replica is in sync with its master."""
        problems: list[str] = []
        owners: dict[int, dict[int, int]] = {}
        running = {node.port for node in self.running_nodes()}
        for node in self.running_nodes():
            try:
                info = node.raw_command("CLUSTER", "INFO")
                views = self.view(node)
                replication = node.raw_command("INFO", "replication")
            except redis.RedisError as exc:
                problems.append(f"{node.port}: {exc!r}")
                continue
            assert isinstance(info, str) and isinstance(replication, str)
            fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
            if fields.get("cluster_state") != "ok" or fields.get("cluster_slots_ok") != str(SLOTS):
                problems.append(f"{node.port}: {info.split()[:3]}")
            for view in views:
                if view.port in running and view.failing:
                    problems.append(f"{node.port} sees {view.port} as {sorted(view.flags)}")
            owners[node.port] = {
                slot: view.port for view in views if view.is_master for slot in view.slots
            }
            stopped = {port for port in owners[node.port].values() if port not in running}
            if stopped:
                problems.append(f"{node.port} sees slots served by stopped {sorted(stopped)}")
            if "role:slave" in replication and "master_link_status:up" not in replication:
                problems.append(f"{node.port}: replica not in sync")
        maps = list(owners.values())
        if any(other != maps[0] for other in maps[1:]):
            problems.append("the nodes disagree on who serves the slots")
        return problems

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until ``problems()`` is empty, or raise with the last problems."""
        deadline = time.monotonic() + timeout
        problems = self.problems()
        while problems:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.flavor} cluster is not healthy: {problems}")
            time.sleep(0.05)
            problems = self.problems()

    # Changes -----------------------------------------------------------------------------

    def move_slot(
        self, slot: int, target: ClusterNodeServer | None = None, *, atomic: bool = False
    ) -> ClusterNodeServer:
        """Move ``slot`` with its keys to ``target`` (by default another master), the way
        ``redis-cli --cluster reshard`` moves each slot (``CLUSTER SETSLOT`` importing and
        migrating, ``MIGRATE`` of its keys, then ``SETSLOT NODE`` on the target, the
        source and the other masters); wait until every node agrees.

        With ``atomic``, the source moves it by itself: ``CLUSTER MIGRATESLOTS``, Valkey's
        atomic slot migration (Valkey 9.0 and later; Redis has no such command).

        Returns:
            The new owner.
        """
        source = self.owner(slot)
        if target is None:
            target = next(self.node_at(port) for port in self.master_ports() if port != source.port)
        ids = {view.port: view.id for view in self.view()}
        source_id, target_id = ids[source.port], ids[target.port]
        if atomic:
            source.command("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot, "NODE", target_id)
        else:
            target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while True:
                keys = source.command("CLUSTER", "GETKEYSINSLOT", slot, 100)
                assert isinstance(keys, list)
                if not keys:
                    break
                source.command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", "KEYS", *keys
                )
            target.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            source.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            for port in self.master_ports():
                if port not in (source.port, target.port):
                    self.node_at(port).command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_healthy()
        deadline = time.monotonic() + 30.0
        while self.owner(slot) is not target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"slot {slot} did not move to {target.port}")
            time.sleep(0.05)
        return target

    def kill_master(self, slot: int, timeout: float = 30.0) -> tuple[ClusterNodeServer, float]:
        """SIGKILL the master serving ``slot`` and wait until one of its replicas has
        taken over and every other node agrees.

        Returns:
            The killed node (``restore`` starts it again) and the seconds from the kill
            until the new master served ``slot`` in every running node's view.
        """
        master = self.owner(slot)
        started = time.monotonic()
        master.stop(kill=True)
        self.wait_healthy(timeout)
        took = time.monotonic() - started
        assert self.owner(slot) is not master
        return master, took

    def freeze_master(self, slot: int, timeout: float = 30.0) -> ClusterNodeServer:
        """SIGSTOP the master serving ``slot`` (its connections stay open, silent) and
        wait until the other nodes have promoted one of its replicas; ``thaw`` it after.

        Returns:
            The frozen node.
        """
        master = self.owner(slot)
        assert master.process is not None
        os.kill(master.process.pid, signal.SIGSTOP)
        others = [node for node in self.running_nodes() if node is not master]
        deadline = time.monotonic() + timeout
        while not all(
            any(v.is_master and slot in v.slots and v.port != master.port for v in self.view(n))
            for n in others
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica of {master.port} took over slot {slot}")
            time.sleep(0.05)
        return master

    def thaw(self, node: ClusterNodeServer, timeout: float = 30.0) -> None:
        """SIGCONT a frozen node: it learns it was replaced and turns replica."""
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGCONT)
        self.wait_healthy(timeout)

    def restore(self, node: ClusterNodeServer, timeout: float = 30.0) -> None:
        """Start a killed node again: it rejoins as a replica; wait until it is in sync."""
        node.start()
        self.wait_healthy(timeout)

    def kill_all(self) -> None:
        """SIGKILL every node (the whole cluster goes down at once); ``restart_all``
        brings it back."""
        for node in self.nodes:
            node.stop(kill=True)

    def restart_all(self, timeout: float = 30.0) -> float:
        """Start every stopped node again on its ports, with its ``nodes.conf``: the
        nodes find each other on their bus ports and the cluster forms again, as it was
        (its slots on the same masters, unless a replica took over while its master was
        still starting), and empty (the nodes keep no data on disk). Wait until it is
        healthy (``cluster_state:ok`` on every node, replicas in sync).

        Returns:
            The seconds from the first start until the cluster was healthy.
        """
        started = time.monotonic()
        for node in self.nodes:
            if not node.running:
                node.start()
        self.wait_healthy(timeout)
        return time.monotonic() - started
