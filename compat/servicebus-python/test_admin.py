"""ServiceBusAdministrationClient 7.15 against Hematite: queues created, read, updated, listed
and deleted at run time, and the properties they are given take effect on the data plane.

The client always speaks https to the connection string's endpoint, so one server here
serves TLS with a certificate from ``hematite dev-cert``, which the tests trust: the admin
client talks to the AMQPS port unpatched (HTTPS and AMQPS share it), and to the plain HTTP
port with the endpoint override the emulator's own Python sample documents. The same server
serves the data plane over AMQPS, to the SDK's default pure-Python transport and to its
uamqp transport (a C AMQP stack, an independent client)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import hematite_server
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue, TransportType
from azure.servicebus.exceptions import MessagingEntityDisabledError, ServiceBusQuotaExceededError
from azure.servicebus.management import ServiceBusAdministrationClient
from test_queues import receive

WAIT = 5
KEY = "SAS_KEY_VALUE"


class TlsServer:
    """A server on a durable data directory with TLS on every port, restartable."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hematite-sb-admin-")
        self.data = str(Path(self.dir) / "data")
        exe = str(hematite_server.binary())
        subprocess.run([exe, "dev-cert", "--out", self.dir + "/cert"], check=True, capture_output=True)
        self.ca = self.dir + "/cert/ca.pem"
        self.server = None
        self.start()

    def start(self):
        self.amqps_port = hematite_server._free_port()
        self.server = hematite_server.start(
            data_dir=self.data,
            https=True,
            servicebus=True,
            extra_args=[
                "--tls-cert", self.dir + "/cert/cert.pem",
                "--tls-key", self.dir + "/cert/key.pem",
                "--amqps-listen", f"127.0.0.1:{self.amqps_port}",
                "--sb-key", f"RootManageSharedAccessKey:{KEY}",
                "--sb-key", "listener:LISTEN_KEY:Listen",
            ],
        )
        # The harness waits for the REST and AMQP ports; AMQPS is bound just after them, and a
        # restart test once dialled it first and was refused.
        deadline = time.monotonic() + 10
        while not hematite_server._port_accepts(self.amqps_port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the AMQPS port {self.amqps_port} did not open")
            time.sleep(0.05)

    def stop(self):
        err = hematite_server.stop(self.server)
        if err:
            raise RuntimeError(err)

    def conn_str(self, key_name="RootManageSharedAccessKey", key=KEY) -> str:
        # What an application has for Azure: no emulator flag, so the SDKs use TLS.
        return (
            f"Endpoint=sb://localhost:{self.amqps_port};"
            f"SharedAccessKeyName={key_name};SharedAccessKey={key}"
        )

    def admin(self, **kw) -> ServiceBusAdministrationClient:
        return ServiceBusAdministrationClient.from_connection_string(
            kw.pop("conn_str", None) or self.conn_str(), connection_verify=self.ca, retry_total=0, **kw
        )

    def client(self, **kw) -> ServiceBusClient:
        # The SDK dials 5671 unless given the endpoint, and WebSockets unless told AMQP.
        return ServiceBusClient.from_connection_string(
            self.conn_str(),
            custom_endpoint_address=f"sb://localhost:{self.amqps_port}",
            transport_type=TransportType.Amqp,
            connection_verify=self.ca,
            retry_total=0,
            **kw,
        )


@pytest.fixture(scope="module")
def tls():
    s = TlsServer()
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


@pytest.fixture
def admin(tls):
    with tls.admin() as a:
        yield a


def name(prefix="q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_the_tutorials_queue_is_created_with_its_size_and_ttl(tls, admin):
    # Microsoft's Python quickstart creates its queue so.
    q = name("taskqueue")
    created = admin.create_queue(q, max_size_in_megabytes=5120, default_message_time_to_live=timedelta(minutes=1))
    assert created.name == q
    assert created.max_size_in_megabytes == 5120
    assert created.default_message_time_to_live == timedelta(minutes=1)
    got = admin.get_queue(q)
    assert (got.max_size_in_megabytes, got.default_message_time_to_live) == (5120, timedelta(minutes=1))
    # Azure's defaults for what was not given.
    assert got.lock_duration == timedelta(minutes=1)
    assert got.max_delivery_count == 10
    assert got.status == "Active"
    assert got.requires_session is False
    with tls.client() as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("Test Message"))
        with c.get_queue_receiver(q, max_wait_time=WAIT) as r:
            [m] = receive(r, 1)
            assert str(m) == "Test Message"
            # The queue's TTL became the message's.
            assert m.time_to_live == timedelta(minutes=1)
            r.complete_message(m)


def test_a_short_ttl_given_at_creation_expires_messages_to_the_dead_letter_queue(tls, admin):
    # The tutorial's one-minute TTL, shortened so the test does not wait a minute.
    q = name()
    admin.create_queue(q, default_message_time_to_live=timedelta(seconds=2), dead_lettering_on_message_expiration=True)
    with tls.client() as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("short-lived"))
        time.sleep(3)
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            assert receive(r, 1, wait=1) == []
        with c.get_queue_receiver(q, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=WAIT) as d:
            [m] = receive(d, 1)
            assert str(m) == "short-lived"
            assert m.dead_letter_reason == "TTLExpiredException"


def test_max_size_given_at_creation_is_enforced(tls, admin):
    q = name()
    admin.create_queue(q, max_size_in_megabytes=1)
    with tls.client() as c, c.get_queue_sender(q) as s:
        with pytest.raises(ServiceBusQuotaExceededError):
            for _ in range(10):
                s.send_messages([ServiceBusMessage(b"x" * 200_000) for _ in range(1)])


def test_an_update_takes_effect_on_the_data_plane(tls, admin):
    q = name()
    admin.create_queue(q)
    props = admin.get_queue(q)
    props.max_delivery_count = 2
    props.lock_duration = timedelta(seconds=20)
    props.user_metadata = "owned by the billing team"
    admin.update_queue(props)
    got = admin.get_queue(q)
    assert (got.max_delivery_count, got.lock_duration, got.user_metadata) == (
        2,
        timedelta(seconds=20),
        "owned by the billing team",
    )
    with tls.client() as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("poison"))
        with c.get_queue_receiver(q, max_wait_time=WAIT) as r:
            for _ in range(2):
                [m] = receive(r, 1)
                r.abandon_message(m)
            assert receive(r, 1, wait=1) == []
        rt = admin.get_queue_runtime_properties(q)
        assert (rt.active_message_count, rt.dead_letter_message_count) == (0, 1)


def test_a_send_disabled_queue_refuses_senders_but_not_receivers(tls, admin):
    q = name()
    admin.create_queue(q)
    with tls.client() as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("before"))
        props = admin.get_queue(q)
        props.status = "SendDisabled"
        admin.update_queue(props)
        assert admin.get_queue(q).status == "SendDisabled"
        with pytest.raises(MessagingEntityDisabledError):
            with c.get_queue_sender(q) as s:
                s.send_messages(ServiceBusMessage("after"))
        with c.get_queue_receiver(q, max_wait_time=WAIT) as r:
            assert [str(m) for m in receive(r, 1)] == ["before"]


def test_runtime_counts_follow_sends_schedules_and_dead_letters(tls, admin):
    q = name()
    admin.create_queue(q)
    with tls.client() as c:
        with c.get_queue_sender(q) as s:
            s.send_messages([ServiceBusMessage(f"m{i}") for i in range(4)])
            s.schedule_messages(ServiceBusMessage("later"), datetime.now(timezone.utc) + timedelta(hours=1))
        with c.get_queue_receiver(q, max_wait_time=WAIT) as r:
            [m] = receive(r, 1)
            r.dead_letter_message(m, reason="bad")
    rt = admin.get_queue_runtime_properties(q)
    assert rt.active_message_count == 3
    assert rt.dead_letter_message_count == 1
    assert rt.scheduled_message_count == 1
    assert rt.total_message_count == 5
    assert rt.size_in_bytes > 0
    assert rt.created_at_utc <= rt.updated_at_utc
    listed = {p.name: p for p in admin.list_queues_runtime_properties()}
    assert listed[q].active_message_count == 3


def test_list_shows_every_queue_and_delete_removes_one(tls, admin):
    made = sorted(name("list") for _ in range(5))
    for q in made:
        admin.create_queue(q)
    names = [p.name for p in admin.list_queues()]
    assert set(made) <= set(names)
    assert names == sorted(names, key=str.lower)
    admin.delete_queue(made[0])
    assert made[0] not in [p.name for p in admin.list_queues()]
    with pytest.raises(ResourceNotFoundError):
        admin.get_queue(made[0])
    with pytest.raises(ResourceNotFoundError):
        admin.delete_queue(made[0])


def test_existing_and_missing_entities_get_azures_answers(admin):
    q = name()
    admin.create_queue(q)
    with pytest.raises(ResourceExistsError):
        admin.create_queue(q)
    # Names are case-insensitive in Service Bus.
    with pytest.raises(ResourceExistsError):
        admin.create_queue(q.upper())
    with pytest.raises(ResourceNotFoundError):
        admin.get_queue(name("missing"))
    with pytest.raises(ResourceNotFoundError):
        admin.get_queue_runtime_properties(name("missing"))
    missing = admin.get_queue(q)
    missing.name = name("missing")
    with pytest.raises(ResourceNotFoundError):
        admin.update_queue(missing)


def test_invalid_properties_are_refused_with_400(admin):
    with pytest.raises(HttpResponseError) as e:
        admin.create_queue(name(), lock_duration=timedelta(minutes=10))
    assert e.value.status_code == 400
    with pytest.raises(HttpResponseError) as e:
        admin.create_queue("-not-a-name")
    assert e.value.status_code == 400


def test_requests_need_a_valid_token_with_manage_rights(tls):
    with tls.admin(conn_str=tls.conn_str(key="WRONG_KEY")) as a:
        with pytest.raises(ClientAuthenticationError):
            a.create_queue(name())
    with tls.admin(conn_str=tls.conn_str("listener", "LISTEN_KEY")) as a:
        with pytest.raises(ClientAuthenticationError):
            a.get_queue(name())


def test_namespace_properties(admin):
    ns = admin.get_namespace_properties()
    assert ns.name == "sbemulatorns"
    assert ns.messaging_sku == "Standard"


def test_plain_http_with_the_documented_endpoint_override(tls):
    # The emulator's Python sample points the client at its HTTP port so; Hematite serves
    # the same API there.
    a = ServiceBusAdministrationClient.from_connection_string(tls.conn_str(), retry_total=0)
    a._impl._client._base_url = f"http://localhost:{tls.server.sb_admin_port}"
    with a:
        q = name()
        a.create_queue(q, max_delivery_count=3)
        assert a.get_queue(q).max_delivery_count == 3
        a.delete_queue(q)
        with pytest.raises(ResourceNotFoundError):
            a.get_queue(q)


def test_queues_created_at_run_time_survive_a_restart(tls, admin):
    q = name("durable")
    admin.create_queue(q, max_delivery_count=4, default_message_time_to_live=timedelta(hours=2))
    with tls.client() as c, c.get_queue_sender(q) as s:
        s.send_messages([ServiceBusMessage("kept") for _ in range(2)])
    tls.stop()
    tls.start()
    with tls.admin() as a:
        got = a.get_queue(q)
        assert (got.max_delivery_count, got.default_message_time_to_live) == (4, timedelta(hours=2))
        assert a.get_queue_runtime_properties(q).active_message_count == 2
    with tls.client() as c, c.get_queue_receiver(q, max_wait_time=WAIT) as r:
        assert [str(m) for m in receive(r, 2)] == ["kept", "kept"]


def test_the_uamqp_transport_over_amqps(tls, admin):
    # uamqp is a C AMQP stack of its own and trusts OpenSSL's default paths: SSL_CERT_FILE,
    # set for this test's process by a child interpreter.
    q = name("uamqp")
    admin.create_queue(q)
    script = f"""
from azure.servicebus import ServiceBusClient, ServiceBusMessage, TransportType
cs = {tls.conn_str()!r}
with ServiceBusClient.from_connection_string(cs, uamqp_transport=True, transport_type=TransportType.Amqp,
        custom_endpoint_address="sb://localhost:{tls.amqps_port}", retry_total=0) as c:
    with c.get_queue_sender({q!r}) as s:
        s.send_messages([ServiceBusMessage(f"u{{i}}") for i in range(3)])
    got = []
    with c.get_queue_receiver({q!r}, max_wait_time=5) as r:
        for _ in range(10):
            for m in r.receive_messages(max_message_count=3, max_wait_time=2):
                got.append(str(m))
                r.complete_message(m)
            if len(got) >= 3:
                break
    print(sorted(got))
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "SSL_CERT_FILE": tls.ca},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "['u0', 'u1', 'u2']"
    assert admin.get_queue_runtime_properties(q).total_message_count == 0
