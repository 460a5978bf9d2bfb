"""Fixtures for the azure-storage-queue 12.x compatibility suite (sync and asyncio)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import hematite_server  # noqa: E402

from azure.core.exceptions import ResourceNotFoundError  # noqa: E402
from azure.storage.queue import QueueClient, QueueServiceClient  # noqa: E402

# No client-side retries: a wrong answer must fail at once, not after minutes of backoff.
CLIENT_KWARGS = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 30}

_SERVER = None


def unique_name(prefix: str = "q") -> str:
    """A fresh, valid queue name (lowercase letters and digits, <= 63 chars)."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def server():
    global _SERVER
    srv = hematite_server.start()
    _SERVER = srv
    yield srv
    err = hematite_server.stop(srv)
    if err:
        raise RuntimeError(err)


@pytest.fixture(scope="session")
def service(server) -> QueueServiceClient:
    return QueueServiceClient.from_connection_string(
        server.connection_string(), secondary_hostname=server.secondary_hostname, **CLIENT_KWARGS
    )


@pytest.fixture
def qname() -> str:
    return unique_name()


@pytest.fixture
def queue(server, qname):
    """A freshly created, empty queue; deleted afterwards."""
    client = QueueClient.from_connection_string(server.connection_string(), qname, **CLIENT_KWARGS)
    client.create_queue()
    yield client
    try:
        client.delete_queue()
    except ResourceNotFoundError:
        pass


@pytest.fixture
def make_queue_client(server):
    """Build a QueueClient on the server for a queue name (no queue is created)."""

    def make(name: str, **kwargs) -> QueueClient:
        return QueueClient.from_connection_string(server.connection_string(), name, **CLIENT_KWARGS, **kwargs)

    return make


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SERVER is not None and _SERVER.log_path and exitstatus not in (0, 5):
        terminalreporter.write_sep("-", f"hematite server log: {_SERVER.log_path} (tail)")
        terminalreporter.write_line(_SERVER.log_tail(3000))
