"""kill -9 of the real binary under concurrent put/receive/delete/clear load, several times, with
a checker for the durability promises (issue 3):

1. no acknowledged put is lost;
2. no acknowledged delete or clear is undone;
3. no acknowledged lease is forgotten: a leased message stays invisible after the restart until
   its lease ends, and its pop receipt still works;

and no partially written message is ever served. Clients are the official SDK, so "acknowledged"
means exactly what an application sees: the SDK call returned without raising.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import hematite_server  # noqa: E402

from azure.storage.queue import QueueClient  # noqa: E402

from conftest import CLIENT_KWARGS  # noqa: E402

ROUNDS = 4
LOAD_SECONDS = (1.0, 2.5)
WORK_LEASE = 2  # seconds: short, so everything is receivable soon after a restart
LONG_LEASE = 120


def client(server, name):
    return QueueClient.from_connection_string(server.connection_string(), name, **CLIENT_KWARGS)


class Ledger:
    """What the SDK acknowledged, per thread-safe category."""

    def __init__(self):
        self.lock = threading.Lock()
        self.put = {}  # content -> message id
        self.deleted = set()  # contents whose delete was acknowledged
        # Deletes sent, acknowledged or not: one the crash cut off may still have happened.
        self.delete_attempted = set()
        self.attempted = set()  # every content ever sent (acknowledged or not)
        self.cleared = set()  # contents put before an acknowledged clear
        self.long_leases = {}  # content -> (id, receipt, lease end (monotonic))


def producer(server, stop, ledger, tag):
    q = client(server, "work")
    n = 0
    while not stop.is_set():
        content = f"{tag}-{n}-" + "p" * random.randint(0, 2000)
        n += 1
        with ledger.lock:
            ledger.attempted.add(content)
        try:
            m = q.send_message(content)
        except Exception:
            if stop.is_set():
                return
            continue
        with ledger.lock:
            ledger.put[content] = m.id


def consumer(server, stop, ledger):
    q = client(server, "work")
    while not stop.is_set():
        try:
            msgs = list(q.receive_messages(messages_per_page=8, max_messages=8, visibility_timeout=WORK_LEASE))
        except Exception:
            if stop.is_set():
                return
            continue
        for m in msgs:
            if random.random() < 0.7:
                with ledger.lock:
                    ledger.delete_attempted.add(m.content)
                try:
                    q.delete_message(m.id, m.pop_receipt)
                except Exception:
                    continue
                with ledger.lock:
                    ledger.deleted.add(m.content)


def leaser(server, stop, ledger, tag):
    q = client(server, "leases")
    n = 0
    while not stop.is_set():
        content = f"{tag}-lease-{n}"
        n += 1
        try:
            q.send_message(content)
            m = q.receive_message(visibility_timeout=LONG_LEASE)
        except Exception:
            if stop.is_set():
                return
            continue
        if m is not None:
            with ledger.lock:
                ledger.long_leases[m.content] = (m.id, m.pop_receipt, time.monotonic() + LONG_LEASE)


def clearer(server, stop, ledger, tag):
    q = client(server, "clearme")
    n = 0
    while not stop.is_set():
        batch = [f"{tag}-clear-{n}-{i}" for i in range(3)]
        n += 1
        try:
            for c in batch:
                q.send_message(c)
            q.clear_messages()
        except Exception:
            if stop.is_set():
                return
            continue
        with ledger.lock:
            ledger.cleared.update(batch)


def drain(q, visibility=300):
    """Every receivable message's content, deleting as it goes."""
    out = []
    while True:
        msgs = list(q.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=visibility))
        if not msgs:
            return out
        for m in msgs:
            out.append(m.content)
            q.delete_message(m.id, m.pop_receipt)


def test_kill_minus_nine_under_load_keeps_every_acknowledged_promise():
    data_dir = tempfile.mkdtemp(prefix="hematite-crash-")
    server = hematite_server.start(data_dir=data_dir)
    try:
        for name in ("work", "leases", "clearme"):
            client(server, name).create_queue()
        for rnd in range(ROUNDS):
            ledger = Ledger()
            stop = threading.Event()
            threads = [threading.Thread(target=producer, args=(server, stop, ledger, f"r{rnd}p{i}")) for i in range(3)]
            threads += [threading.Thread(target=consumer, args=(server, stop, ledger)) for _ in range(2)]
            threads.append(threading.Thread(target=leaser, args=(server, stop, ledger, f"r{rnd}")))
            threads.append(threading.Thread(target=clearer, args=(server, stop, ledger, f"r{rnd}")))
            for t in threads:
                t.start()
            time.sleep(random.uniform(*LOAD_SECONDS))
            # Crash while requests are in flight, then let the clients notice.
            hematite_server.kill9(server)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            assert ledger.put, f"round {rnd}: no put was acknowledged; the load did not run"

            server = hematite_server.start(data_dir=data_dir)

            # 3. Leases survive: still invisible, receipts still valid.
            leases = client(server, "leases")
            live = {c: v for c, v in ledger.long_leases.items() if v[2] - time.monotonic() > 10}
            peeked = {m.content for m in leases.peek_messages(max_messages=32)}
            assert not peeked & set(live), f"round {rnd}: leased messages visible after restart: {peeked & set(live)}"
            for content, (mid, receipt, _) in live.items():
                leases.delete_message(mid, receipt)  # raises if the receipt was forgotten
            leases.clear_messages()

            # 2. Clears are not undone.
            clearme = client(server, "clearme")
            left = {m.content for m in clearme.peek_messages(max_messages=32)}
            assert not left & ledger.cleared, f"round {rnd}: cleared messages came back: {left & ledger.cleared}"
            clearme.clear_messages()

            # 1 + 2. Every acknowledged put is there unless its delete was acknowledged; no
            # acknowledged delete is undone; nothing altered.
            time.sleep(WORK_LEASE + 0.5)
            work = client(server, "work")
            drained = drain(work)
            got = set(drained)
            assert len(got) == len(drained), f"round {rnd}: a message was served twice in one drain"
            must = set(ledger.put) - ledger.delete_attempted
            lost = must - got
            assert not lost, f"round {rnd}: {len(lost)} acknowledged puts lost, e.g. {sorted(lost)[:3]}"
            undone = got & ledger.deleted
            assert not undone, f"round {rnd}: {len(undone)} acknowledged deletes undone"
            unknown = got - ledger.attempted
            assert not unknown, f"round {rnd}: messages nobody sent (partial/corrupt?): {sorted(unknown)[:3]}"
            print(f"round {rnd}: {len(ledger.put)} puts, {len(ledger.deleted)} deletes, "
                  f"{len(ledger.long_leases)} leases, {len(ledger.cleared)} cleared acknowledged; all kept")
    finally:
        hematite_server.stop(server)
        shutil.rmtree(data_dir, ignore_errors=True)
