"""`--workers` values and the port claim of `serve --workers`."""

from __future__ import annotations

import os
import socket

import pytest
from tests.conftest import free_port

from scoreboard.transport.workers import port_socket, resolve_count


def test_auto_and_zero_mean_one_worker_per_usable_cpu() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert resolve_count("auto") == resolve_count("AUTO") == resolve_count("0") == cpus
    assert resolve_count("3") == 3


@pytest.mark.parametrize("value", ["-1", "two", "", "1.5"])
def test_other_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        resolve_count(value)


def test_a_port_held_by_a_plain_listener_cannot_be_claimed() -> None:
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(OSError):
            port_socket("127.0.0.1", port)


def test_workers_share_the_parents_claim() -> None:
    port = free_port()
    with port_socket("127.0.0.1", port) as claim, port_socket("127.0.0.1", port) as worker:
        worker.listen()
        assert claim.getsockname() == worker.getsockname()
