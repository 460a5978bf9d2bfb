"""Fixtures for the Service Bus compatibility suite: one server on the durable store, with
Service Bus on free ports and a namespace read from an emulator-format ``config.json``.

The configuration declares a pool of queues of each kind, as the emulator's users do, and every
test takes fresh ones; ``test_admin.py`` creates its queues over the administration API on a
server of its own."""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import hematite_server  # noqa: E402

# Each kind: how many queues, and their emulator Properties.
KINDS = {
    "plain": (120, {}),
    # Azure's shortest lock.
    "short_lock": (12, {"LockDuration": "PT5S"}),
    "two_deliveries": (12, {"MaxDeliveryCount": 2}),
    "ttl_to_dlq": (6, {"DefaultMessageTimeToLive": "PT2S", "DeadLetteringOnMessageExpiration": True}),
    "ttl": (6, {"DefaultMessageTimeToLive": "PT2S"}),
    "small_messages": (6, {"MaxMessageSizeInKilobytes": 1}),
    "crash": (1, {"LockDuration": "PT5S"}),
    "one_megabyte": (2, {"MaxSizeInMegabytes": 1}),
}

_counters = {kind: itertools.count() for kind in KINDS}
_SERVER = None


def config_json() -> str:
    queues = [
        {"Name": f"{kind}-{i}", "Properties": props}
        for kind, (n, props) in KINDS.items()
        for i in range(n)
    ]
    return json.dumps(
        {"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": queues}], "Logging": {"Type": "File"}}}
    )


def take(kind: str = "plain") -> str:
    """A queue of this kind no other test has used."""
    n, _ = KINDS[kind]
    i = next(_counters[kind])
    if i >= n:
        raise RuntimeError(f"the pool of {kind} queues ({n}) is used up; raise it in KINDS")
    return f"{kind}-{i}"


@pytest.fixture(scope="session")
def config_path():
    d = tempfile.mkdtemp(prefix="hematite-sb-config-")
    p = Path(d) / "config.json"
    p.write_text(config_json())
    return str(p)


# The emulator's key, plus one key per single right (tests of what each claim allows).
KEYS = [
    "RootManageSharedAccessKey:SAS_KEY_VALUE",
    "listener:LISTEN_KEY:Listen",
    "sender:SEND_KEY:Send",
]


def start_server(config_path: str, data_dir=None):
    keys = [arg for k in KEYS for arg in ("--sb-key", k)]
    return hematite_server.start(
        data_dir=data_dir, extra_args=["--sb-config", config_path, *keys], servicebus=True
    )


@pytest.fixture(scope="session")
def server(config_path):
    global _SERVER
    srv = start_server(config_path)
    _SERVER = srv
    yield srv
    err = hematite_server.stop(srv)
    if err:
        raise RuntimeError(err)


@pytest.fixture(scope="session")
def conn_str(server) -> str:
    return server.sb_connection_string()


@pytest.fixture
def queue() -> str:
    return take("plain")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SERVER is not None and _SERVER.log_path and exitstatus not in (0, 5):
        terminalreporter.write_sep("-", f"hematite server log: {_SERVER.log_path} (tail)")
        terminalreporter.write_line(_SERVER.log_tail(3000))
