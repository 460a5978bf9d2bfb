"""Two `hematite serve` nodes on one PostgreSQL database (issue 14), driven by the official
azure-storage-queue SDK: a message put on one node is received on the other, a lease taken on
one holds on the other, a node killed with -9 while holding leases loses nothing and
redelivers nothing early, and consumers on both nodes never share a message.

The database server is `HEMATITE_TEST_POSTGRES` (`scripts/test` starts one); each test gets a
database of its own."""

from __future__ import annotations

import glob
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue import Metrics, QueueClient, QueueServiceClient, RetentionPolicy

import hematite_server
from conftest import CLIENT_KWARGS, unique_name

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HEMATITE_URL")), reason="starts its own servers on PostgreSQL"
)


def fresh_database() -> str:
    return hematite_server.fresh_postgres_database("nodes")


@pytest.fixture
def nodes():
    db = fresh_database()
    started = [hematite_server.start(extra_args=["--store", db]) for _ in range(2)]
    yield started
    for s in started:
        hematite_server.stop(s)


def queue(node, name) -> QueueClient:
    return QueueClient.from_connection_string(node.connection_string(), name, **CLIENT_KWARGS)


def drain(q: QueueClient, visibility_timeout: int, delete: bool) -> set:
    """The contents of every message `q` still holds, received in pages until none is
    visible; leased for `visibility_timeout` seconds, or deleted."""
    contents = set()
    while True:
        batch = list(q.receive_messages(messages_per_page=32, visibility_timeout=visibility_timeout))
        if not batch:
            return contents
        for m in batch:
            contents.add(m.content)
            if delete:
                q.delete_message(m.id, m.pop_receipt)


def test_a_message_put_on_one_node_is_received_and_deleted_on_the_other(nodes):
    a, b = nodes
    name = unique_name()
    queue(a, name).create_queue()
    sent = {f"m{i}" for i in range(20)}
    for text in sent:
        queue(a, name).send_message(text)
    got = list(queue(b, name).receive_messages(messages_per_page=32, visibility_timeout=30))
    assert {m.content for m in got} == sent
    assert list(queue(a, name).peek_messages(max_messages=32)) == [], "leased on b, invisible on a"
    for m in got:
        queue(a, name).delete_message(m.id, m.pop_receipt)
    assert queue(b, name).get_queue_properties().approximate_message_count == 0


def test_a_lease_taken_on_one_node_holds_on_the_other(nodes):
    a, b = nodes
    name = unique_name()
    queue(a, name).create_queue()
    queue(a, name).send_message("leased")
    first = next(iter(queue(a, name).receive_messages(visibility_timeout=2)))
    assert list(queue(b, name).receive_messages()) == []
    time.sleep(2.5)
    again = next(iter(queue(b, name).receive_messages(visibility_timeout=30)))
    assert (again.id, again.dequeue_count) == (first.id, 2)
    with pytest.raises(HttpResponseError) as e:
        queue(a, name).delete_message(first.id, first.pop_receipt)
    assert e.value.status_code == 404, "the old receipt no longer works"
    queue(a, name).delete_message(again.id, again.pop_receipt)


def test_a_node_killed_while_holding_leases_loses_nothing_and_redelivers_late(nodes):
    a, b = nodes
    name = unique_name()
    queue(a, name).create_queue()
    for i in range(5):
        queue(a, name).send_message(f"k{i}")
    held = list(queue(a, name).receive_messages(messages_per_page=5, visibility_timeout=3))
    leased_at = time.monotonic()
    assert len(held) == 5
    hematite_server.kill9(a)
    while time.monotonic() - leased_at < 2.5:
        assert list(queue(b, name).receive_messages()) == [], "redelivered before the lease ended"
        time.sleep(0.2)
    time.sleep(1.0)
    again = list(queue(b, name).receive_messages(messages_per_page=5, visibility_timeout=30))
    assert sorted(m.content for m in again) == [f"k{i}" for i in range(5)]
    assert all(m.dequeue_count == 2 for m in again)
    for old in held:
        with pytest.raises(HttpResponseError):
            queue(b, name).delete_message(old.id, old.pop_receipt)


class Writers:
    """Threads putting numbered messages through one node until stopped, each put's start and
    end time and outcome recorded."""

    def __init__(self, node, name, threads=4):
        self.q = [queue(node, name) for _ in range(threads)]
        self.log, self.lock, self.stop = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, i):
        n = 0
        while not self.stop.is_set():
            text, n = f"w{i}-{n}", n + 1
            start = time.monotonic()
            try:
                self.q[i].send_message(text)
                outcome = "stored"
            except ResourceNotFoundError:
                outcome = "missing"
            except HttpResponseError as e:
                outcome = f"error {e.status_code}"
            with self.lock:
                self.log.append((text, start, time.monotonic(), outcome))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return self.log


def test_delete_queue_on_one_node_racing_puts_on_the_other(nodes):
    """Puts through node b while node a deletes the queue: a put that starts after the delete
    answered is refused (404), and the queue made again holds none of the old messages."""
    a, b = nodes
    name = unique_name()
    queue(a, name).create_queue()
    writers = Writers(b, name)
    time.sleep(1.0)
    queue(a, name).delete_queue()
    deleted = time.monotonic()
    time.sleep(1.0)
    log = writers.finish()
    assert [o for _, _, _, o in log if o.startswith("error")] == []
    before = [t for t, _, end, o in log if o == "stored" and end < deleted]
    late = [(t, o) for t, start, _, o in log if start > deleted and o != "missing"]
    assert len(before) > 20, "puts ran before the delete"
    assert late == [], "a put after the delete was not refused"
    queue(a, name).create_queue()
    assert list(queue(b, name).peek_messages(max_messages=32)) == []
    assert queue(a, name).get_queue_properties().approximate_message_count == 0


def test_clear_on_one_node_racing_puts_on_the_other(nodes):
    """Puts through node b while node a clears the queue: every put done before the clear
    began is gone, and every put begun after the clear answered is kept."""
    a, b = nodes
    name = unique_name()
    queue(a, name).create_queue()
    writers = Writers(b, name)
    time.sleep(1.0)
    began = time.monotonic()
    queue(a, name).clear_messages()
    cleared = time.monotonic()
    time.sleep(1.0)
    log = writers.finish()
    assert all(o == "stored" for _, _, _, o in log), "every put succeeds"
    kept = drain(queue(a, name), visibility_timeout=60, delete=True)
    done_before = {t for t, _, end, _ in log if end < began}
    begun_after = {t for t, start, _, _ in log if start > cleared}
    assert len(done_before) > 20 and len(begun_after) > 20
    assert kept & done_before == set(), "a put from before the clear survived it"
    assert begun_after <= kept, "a put from after the clear was lost"


def test_service_properties_set_on_both_nodes_at_once_keep_both_changes(nodes):
    """Set Service Properties changes only the elements it names: node a sets the hour
    metrics while node b sets the minute metrics, many times at once, and each reads back
    after every write that its half holds what it wrote. Each node reads, patches and writes
    the whole document; without compare-and-set, a write from one node made on a read from
    before the other's last write carries the other's old half back."""
    a, b = nodes
    rounds = 40
    lost = []

    def set_metrics(node, which):
        svc = QueueServiceClient.from_connection_string(node.connection_string(), **CLIENT_KWARGS)
        for days in range(1, rounds + 1):
            m = Metrics(enabled=True, include_apis=True, retention_policy=RetentionPolicy(enabled=True, days=days))
            svc.set_service_properties(**{which: m})
            now = svc.get_service_properties()[which].retention_policy.days
            if now != days:
                lost.append((which, days, now))

    threads = [
        threading.Thread(target=set_metrics, args=(a, "hour_metrics")),
        threading.Thread(target=set_metrics, args=(b, "minute_metrics")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lost == [], "a node's change was undone by the other's"
    props = QueueServiceClient.from_connection_string(a.connection_string(), **CLIENT_KWARGS).get_service_properties()
    assert props["hour_metrics"].retention_policy.days == rounds
    assert props["minute_metrics"].retention_policy.days == rounds


def health(node) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(node.base_url + "/health", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def until(what, check, seconds):
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if what(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_health_follows_the_database():
    """A load balancer's `GET /health` on the Queue port: 200 while the database answers,
    503 while it refuses the node, 200 again once it takes connections."""
    db = fresh_database()
    name = db.rsplit("/", 1)[1]
    admin = os.environ["HEMATITE_TEST_POSTGRES"]
    node = hematite_server.start(extra_args=["--store", db])

    def psql(sql):
        subprocess.run(["psql", admin, "-q", "-c", sql], check=True, capture_output=True)

    try:
        assert health(node) == (200, '{"status":"healthy"}')
        psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        status, body = until(lambda r: r[0] == 503, lambda: health(node), 10)
        assert status == 503 and '"unhealthy"' in body, body
        psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        assert until(lambda r: r[0] == 200, lambda: health(node), 15)[0] == 200
    finally:
        psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        hematite_server.stop(node)


def skewed_clock(offset: str) -> dict:
    """The environment that runs a process with its wall clock moved by `offset` (libfaketime,
    which `scripts/test` installs)."""
    libs = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    if not libs:
        pytest.fail("libfaketime is missing: install Debian's faketime (scripts/test does)")
    return {"LD_PRELOAD": libs[0], "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def test_a_node_whose_clock_runs_an_hour_ahead_redelivers_nothing_early():
    """Node b's wall clock runs an hour ahead. Nodes take their time from the database, so b
    neither sees a's 30-second lease as long over nor stamps its puts an hour late."""
    db = fresh_database()
    a = hematite_server.start(extra_args=["--store", db])
    b = hematite_server.start(extra_args=["--store", db], env=skewed_clock("+1h"))
    try:
        name = unique_name()
        queue(a, name).create_queue()
        queue(a, name).send_message("leased on a")
        leased = next(iter(queue(a, name).receive_messages(visibility_timeout=30)))
        assert list(queue(b, name).receive_messages(visibility_timeout=30)) == [], "redelivered early"
        queue(b, name).send_message("put on b")
        seen = list(queue(b, name).peek_messages(max_messages=32))
        assert [m.content for m in seen] == ["put on b"]
        skew = abs(seen[0].inserted_on.timestamp() - time.time())
        assert skew < 60, f"node b stamps its puts {skew:.0f} s off"
        queue(b, name).delete_message(leased.id, leased.pop_receipt)
    finally:
        hematite_server.stop(a)
        hematite_server.stop(b)


def test_consumers_on_both_nodes_never_share_a_message(nodes):
    a, b = nodes
    name = unique_name()
    queue(a, name).create_queue()
    total = 300
    for i in range(total):
        queue(a if i % 2 else b, name).send_message(f"c{i}")
    seen, lock = [], threading.Lock()

    def consume(node):
        q = queue(node, name)
        while True:
            batch = list(q.receive_messages(messages_per_page=8, visibility_timeout=60))
            if not batch:
                return
            for m in batch:
                q.delete_message(m.id, m.pop_receipt)
                with lock:
                    seen.append(m.content)

    threads = [threading.Thread(target=consume, args=(n,)) for n in (a, b) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == total, "each message received and deleted once"
    assert sorted(seen) == sorted(f"c{i}" for i in range(total))


def test_killed_connections_and_a_crashed_database_lose_no_acknowledged_put(nodes):
    """Under load from four writers: the database kills every node connection twice, then
    crashes and restarts. Writes in flight may fail, but every put the SDK saw succeed is
    there afterwards, and the nodes reconnect by themselves."""
    pgdir = os.environ.get("HEMATITE_TEST_PGDIR")
    if not pgdir:
        pytest.fail("set HEMATITE_TEST_PGDIR to the test cluster's directory (scripts/test sets it)")
    a, b = nodes
    name = unique_name()
    queue(a, name).create_queue()
    acked, failed, lock, stop = [], [], threading.Lock(), threading.Event()

    def writer(tag):
        q = queue(a if tag % 2 else b, name)
        n = 0
        while not stop.is_set():
            text = f"w{tag}-{n}"
            n += 1
            try:
                q.send_message(text)
            except Exception:  # noqa: BLE001 - a write cut by the fault is allowed to fail
                with lock:
                    failed.append(text)
                time.sleep(0.05)
                continue
            with lock:
                acked.append(text)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    url = os.environ["HEMATITE_TEST_POSTGRES"]
    kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hematite'"
    for _ in range(2):
        time.sleep(0.7)
        subprocess.run(["psql", url, "-q", "-c", kill], check=True, capture_output=True)
    time.sleep(0.7)
    repo = os.path.join(os.path.dirname(__file__), "..", "..")
    subprocess.run([os.path.join(repo, "scripts", "pg-cluster"), "crash", pgdir], check=True)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    # The nodes reconnect by themselves: a put through each works again within seconds.
    for node in (a, b):
        deadline = time.monotonic() + 15
        while True:
            try:
                queue(node, name).send_message(f"after-{node.base_url}")
                break
            except Exception:  # noqa: BLE001
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    stored = drain(queue(b, name), visibility_timeout=300, delete=False)
    assert len(acked) > 50, f"the load ran ({len(acked)} acknowledged, {len(failed)} failed)"
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged puts lost, e.g. {sorted(missing)[:5]}"


def test_lease_checker_32_consumers_with_updates_and_pauses(nodes):
    """32 consumers on two nodes take 1-2 s leases, sometimes extend them (Update Message)
    and sometimes pause past them. The checker holds each consumer to what the SDK
    acknowledged:
    - no two consumers hold one message in overlapping certain leases (a lease is certain
      from the receive's answer to its end as the server stated it);
    - nothing is deleted twice;
    - every put is received and deleted."""
    import random

    a, b = nodes
    name = unique_name()
    queue(a, name).create_queue()
    total = 200
    for i in range(total):
        queue(a if i % 2 else b, name).send_message(f"l{i}")
    # content -> [(start, end, who)]: when each consumer certainly held it.
    leases, deleted, lock = {}, [], threading.Lock()
    deadline = time.monotonic() + 60

    def consume(who, node):
        rnd = random.Random(who)
        q = queue(node, name)
        while time.monotonic() < deadline:
            lease = rnd.choice([1, 2])
            sent = time.monotonic()
            batch = list(q.receive_messages(messages_per_page=2, visibility_timeout=lease))
            got_at = time.monotonic()
            if not batch:
                with lock:
                    if len(deleted) >= total:
                        return
                time.sleep(0.1)
                continue
            for m in batch:
                # Certain from the answer until the lease's earliest possible end: the
                # server began it no sooner than the request was sent (one clock: the
                # server takes the database's, on this machine).
                start, end = got_at, sent + lease
                receipt = m.pop_receipt
                if rnd.random() < 0.3:
                    try:
                        updating = time.monotonic()
                        upd = q.update_message(m.id, receipt, visibility_timeout=2)
                        receipt = upd.pop_receipt
                        end = max(end, updating + 2)
                    except HttpResponseError:
                        continue  # the lease had lapsed and someone else took it
                with lock:
                    leases.setdefault(m.content, []).append((start, end, who))
                if rnd.random() < 0.2:
                    time.sleep(2.5)  # past the lease: the delete must fail
                try:
                    q.delete_message(m.id, receipt)
                except HttpResponseError:
                    continue
                with lock:
                    deleted.append(m.content)

    threads = [
        threading.Thread(target=consume, args=(i, a if i % 2 else b)) for i in range(32)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(deleted) == len(set(deleted)), "a message was deleted twice"
    assert sorted(deleted) == sorted(f"l{i}" for i in range(total)), "every put received and deleted"
    for content, held in leases.items():
        held.sort()
        for (s1, e1, w1), (s2, e2, w2) in zip(held, held[1:]):
            assert s2 >= e1 or w1 == w2, f"{content}: consumers {w1} and {w2} held overlapping leases"
