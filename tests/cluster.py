"""A Redis Cluster of the tests' own: three masters and three replicas from the machine's
redis-server, on free ports, without persistence, so that a test may kill a master.

`cluster-node-timeout` is short (1 s) so that a failover completes within a test's patience,
and `cluster-require-full-coverage no` (as docs/SCALING.md recommends) keeps the other masters
serving while one master's slots wait for their replica's promotion.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

NODE_TIMEOUT_MS = 1000
START_SECONDS = 60.0  # generous: on a loaded machine (CI) six starts and a handshake take long


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` ports, each free with its cluster bus port (+10000) free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536 and port not in ports and _free(port + 10000):
            ports.append(port)
    return ports


def cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, check=False, timeout=30
    )
    return done.stdout.decode()


class ThrowawayCluster:
    """Six redis-server processes joined by `redis-cli --cluster create --cluster-replicas 1`."""

    def __init__(self, directory: Path, nodes: int = 6) -> None:
        self.directory = directory
        self.ports = free_ports(nodes)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The service's URL form: every node (any one would do; the rest are discovered)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for port in self.ports:
            self._spawn(port)
        deadline = time.monotonic() + START_SECONDS
        for port in self.ports:
            while cli(port, "ping").strip() != "PONG":
                assert time.monotonic() < deadline, f"cluster node {port} did not start"
                time.sleep(0.05)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1"]
        done = subprocess.run(
            [*create, "--cluster-yes"], capture_output=True, check=False, timeout=120
        )
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        self.wait_ok(deadline)

    def _spawn(self, port: int) -> None:
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
        command += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
        command += ["--cluster-require-full-coverage", "no", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.directory)]
        self.processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    def wait_ok(self, deadline: float | None = None) -> None:
        """Until every live node says cluster_state:ok and knows every live node, and every
        replica's link to its master is up (so that a failover can happen)."""
        deadline = deadline or time.monotonic() + START_SECONDS
        while not all(self._settled(port) for port in self.live_ports()):
            assert time.monotonic() < deadline, "the throwaway cluster did not settle"
            time.sleep(0.1)

    def _settled(self, port: int) -> bool:
        info = cli(port, "cluster", "info")
        if "cluster_state:ok" not in info or "cluster_slots_assigned:16384" not in info:
            return False
        if "cluster_slots_fail:0" not in info:
            return False
        replication = cli(port, "info", "replication")
        return "role:master" in replication or "master_link_status:up" in replication

    def live_ports(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """The live masters' ports and their slot ranges, as the cluster reports them."""
        out: dict[int, list[tuple[int, int]]] = {}
        port = self.live_ports()[0]
        for line in cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) < 8 or "master" not in fields[2] or "fail" in fields[2]:
                continue
            node_port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            ranges = []
            for spec in fields[8:]:
                if spec.startswith("["):
                    continue  # a slot being migrated
                low, _, high = spec.partition("-")
                ranges.append((int(low), int(high or low)))
            out[node_port] = ranges
        return out

    def master_of(self, slot: int) -> int:
        for port, ranges in self.masters().items():
            if any(low <= slot <= high for low, high in ranges):
                return port
        raise LookupError(f"no live master serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash: no goodbye to the cluster)."""
        process = self.processes[port]
        process.kill()
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        self.processes.clear()
