"""kill -9 of the real binary while the official SDK sends and settles, several times over one
data directory: nothing the SDK saw acknowledged is lost, and nothing it saw completed comes
back. "Acknowledged" is what an application sees: the SDK call returned without raising."""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time

import hematite_server
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode

from conftest import start_server, take

ROUNDS = 3
LOAD_SECONDS = (1.0, 2.5)


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = set()  # bodies whose send was acknowledged
        self.completed = set()  # bodies whose completion was acknowledged
        # Completions sent, acknowledged or not: one the crash cut off may still have happened.
        self.complete_attempted = set()


def sb_client(server):
    return ServiceBusClient.from_connection_string(
        server.sb_connection_string(), retry_total=0, socket_timeout=5
    )


def producer(server, queue, stop, ledger, tag):
    n = 0
    try:
        with sb_client(server) as c, c.get_queue_sender(queue) as sender:
            while not stop.is_set():
                size = random.choice([1, 1, 5])
                bodies = [f"{tag}-{n + i}-" + "p" * random.randint(0, 3000) for i in range(size)]
                n += size
                sender.send_messages([ServiceBusMessage(b) for b in bodies])
                with ledger.lock:
                    ledger.sent.update(bodies)
    except Exception:  # noqa: BLE001 - the crash cuts calls off; only acknowledged ones count
        pass


def consumer(server, queue, stop, ledger):
    try:
        with sb_client(server) as c, c.get_queue_receiver(queue) as receiver:
            while not stop.is_set():
                for m in receiver.receive_messages(max_message_count=8, max_wait_time=0.5):
                    # Leave some locked, so the crash also catches messages mid-lock.
                    if random.random() < 0.8:
                        with ledger.lock:
                            ledger.complete_attempted.add(str(m))
                        receiver.complete_message(m)
                        with ledger.lock:
                            ledger.completed.add(str(m))
    except Exception:  # noqa: BLE001
        pass


def drain(server, queue):
    """Every message left, waiting out the 5 s locks the crash left behind."""
    bodies = []
    with sb_client(server) as c, c.get_queue_receiver(
        queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as r:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 8:
            got = r.receive_messages(max_message_count=100, max_wait_time=1)
            if got:
                idle_since = time.monotonic()
            bodies += [str(m) for m in got]
    return bodies


def test_kill_9_under_load_loses_nothing_acknowledged(config_path):
    queue = take("crash")
    data_dir = tempfile.mkdtemp(prefix="hematite-sb-crash-")
    ledger = Ledger()
    try:
        for round_ in range(ROUNDS):
            server = start_server(config_path, data_dir=data_dir)
            stop = threading.Event()
            threads = [
                threading.Thread(target=producer, args=(server, queue, stop, ledger, f"r{round_}p{k}"))
                for k in range(3)
            ] + [threading.Thread(target=consumer, args=(server, queue, stop, ledger)) for _ in range(2)]
            for t in threads:
                t.start()
            time.sleep(random.uniform(*LOAD_SECONDS))
            hematite_server.kill9(server)
            stop.set()
            for t in threads:
                t.join(30)
            assert not any(t.is_alive() for t in threads), "an SDK call hung after the crash"
        server = start_server(config_path, data_dir=data_dir)
        try:
            left = drain(server, queue)
        finally:
            hematite_server.stop(server)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    assert len(ledger.sent) > 50, f"too little load to mean anything: {len(ledger.sent)}"
    assert ledger.completed, "no completion was acknowledged"
    left_set = set(left)
    assert len(left) == len(left_set), "a message came back twice"
    lost = ledger.sent - ledger.complete_attempted - left_set
    assert not lost, f"{len(lost)} acknowledged sends lost, e.g. {sorted(lost)[:3]}"
    resurrected = ledger.completed & left_set
    assert not resurrected, f"{len(resurrected)} completed messages came back"
