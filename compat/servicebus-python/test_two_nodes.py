"""Two `hematite serve` nodes on one PostgreSQL database (issue 14), driven by the official
azure-servicebus SDK: a queue created over the administration API on one node is served by the
other at once, messages sent through one are received and settled through the other, and a
lock taken on one node holds on the other until it lapses.

The database server is `HEMATITE_TEST_POSTGRES` (`scripts/test` starts one); each test gets a
database of its own."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import timedelta

import hematite_server
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.management import ServiceBusAdministrationClient, SqlRuleFilter
from test_queues import receive

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HEMATITE_URL")), reason="starts its own servers on PostgreSQL"
)


def fresh_database() -> str:
    return hematite_server.fresh_postgres_database("sb_nodes")


@pytest.fixture
def nodes():
    db = fresh_database()
    started = [hematite_server.start(servicebus=True, extra_args=["--store", db]) for _ in range(2)]
    yield started
    for s in started:
        hematite_server.stop(s)


def admin(node) -> ServiceBusAdministrationClient:
    # The client speaks https; the emulator's sample points it at the HTTP port so.
    a = ServiceBusAdministrationClient.from_connection_string(node.sb_connection_string(), retry_total=0)
    a._impl._client._base_url = f"http://localhost:{node.sb_admin_port}"
    return a


def client(node) -> ServiceBusClient:
    return ServiceBusClient.from_connection_string(node.sb_connection_string(), retry_total=0)


def test_a_queue_made_on_one_node_carries_messages_from_the_other(nodes):
    a, b = nodes
    q = f"made-{uuid.uuid4().hex[:8]}"
    with admin(a) as ad:
        ad.create_queue(q, max_delivery_count=3)
    with admin(b) as ad:
        assert ad.get_queue(q).max_delivery_count == 3, "node b reads what node a created"
    with client(b) as c, c.get_queue_sender(q) as s:
        s.send_messages([ServiceBusMessage(f"m{i}") for i in range(10)])
    with client(a) as c, c.get_queue_receiver(q, max_wait_time=5) as r:
        got = receive(r, 10)
        assert sorted(str(m) for m in got) == sorted(f"m{i}" for i in range(10))
        assert [m.sequence_number for m in got] == sorted(m.sequence_number for m in got)
        for m in got:
            r.complete_message(m)
    with admin(b) as ad:
        assert ad.get_queue_runtime_properties(q).total_message_count == 0


def test_a_lock_taken_on_one_node_holds_on_the_other(nodes):
    a, b = nodes
    q = f"lock-{uuid.uuid4().hex[:8]}"
    with admin(a) as ad:
        ad.create_queue(q, lock_duration=timedelta(seconds=5))
    with client(a) as c, c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("held"))
    with client(a) as ca, ca.get_queue_receiver(q, max_wait_time=5) as ra:
        [held] = receive(ra, 1)
        locked_at = time.monotonic()
        with client(b) as cb, cb.get_queue_receiver(q, max_wait_time=2) as rb:
            assert rb.receive_messages(max_message_count=1, max_wait_time=2) == [], "locked on node a"
            while time.monotonic() - locked_at < 6:
                time.sleep(0.5)
            [again] = receive(rb, 1, wait=10)
            assert (again.sequence_number, again.delivery_count) == (held.sequence_number, 1)
            rb.complete_message(again)


def test_rules_added_through_both_nodes_at_once_are_all_kept(nodes):
    """A subscription's rules live in one description that each node reads, changes and
    writes back. Rules added through both nodes at once must all be kept: a node writing from
    a copy that misses the other's newest rule would drop it, so a change lands only on the
    description it was made from, and is made again otherwise."""
    a, b = nodes
    topic = f"t-{uuid.uuid4().hex[:8]}"
    with admin(a) as ad:
        ad.create_topic(topic)
        ad.create_subscription(topic, "s")
    errors = []

    def add(node, prefix):
        try:
            with admin(node) as ad:
                for i in range(12):
                    ad.create_rule(topic, "s", f"{prefix}{i}", filter=SqlRuleFilter(f"n = {i}"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(n, p)) for n, p in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    want = sorted(["$Default"] + [f"{p}{i}" for p in "ab" for i in range(12)])
    for node in (a, b):
        with admin(node) as ad:
            assert sorted(r.name for r in ad.list_rules(topic, "s")) == want
