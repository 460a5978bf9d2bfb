"""Fixtures for the legacy azure==0.11.1 suite (azure.storage.QueueService, x-ms-version 2014-02-14).

This SDK predates connection strings for the emulator: it talks to the development account
when the EMULATED environment variable is set and no credentials are passed, sending
path-style requests (/devstoreaccount1/...) to `dev_host`.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import hematite_server  # noqa: E402

from azure.http import HTTPError  # noqa: E402
from azure.storage import QueueService  # noqa: E402

_SERVER = None


def unique_name(prefix: str = "legacy") -> str:
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


class Recorder:
    """Wraps the SDK's request filter to record (status, x-ms-error-code) of every response."""

    def __init__(self, svc: QueueService):
        self.calls: list[tuple[int, str | None]] = []
        inner = svc._filter

        def record(request):
            try:
                resp = inner(request)
            except HTTPError as e:
                headers = {k.lower(): v for k, v in (e.respheader or [])}
                self.calls.append((e.status, headers.get("x-ms-error-code")))
                raise
            self.calls.append((resp.status, dict(resp.headers).get("x-ms-error-code")))
            return resp

        svc._filter = record

    @property
    def last(self):
        return self.calls[-1]

    def statuses(self):
        return [s for s, _ in self.calls]


@pytest.fixture
def svc(server):
    os.environ["EMULATED"] = "true"
    service = QueueService(dev_host=server.host, timeout=30)
    assert service.use_local_storage and service.protocol == "http"
    assert service.account_name == hematite_server.DEV_ACCOUNT
    service.recorder = Recorder(service)
    return service


@pytest.fixture
def qname(svc):
    name = unique_name()
    yield name
    try:
        svc.delete_queue(name)
    except Exception:
        pass


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SERVER is not None and _SERVER.log_path and exitstatus not in (0, 5):
        terminalreporter.write_sep("-", f"hematite server log: {_SERVER.log_path} (tail)")
        terminalreporter.write_line(_SERVER.log_tail(3000))
