"""What the SDKs never send, from an independent AMQP client (Apache Qpid Proton): SASL PLAIN
with the namespace key, links without a CBS token, an oversized transfer, drain, released and
modified outcomes, receive-and-delete links, AMQP-value bodies and every section kept."""

from __future__ import annotations

import time

import pytest
from proton import Delivery, Message, symbol
from proton.reactor import AtMostOnce
from proton.utils import BlockingConnection, LinkDetached

from conftest import take


def connect(server, mechanism="PLAIN", password="SAS_KEY_VALUE"):
    kwargs = {"allowed_mechs": mechanism, "allow_insecure_mechs": True}
    if mechanism == "PLAIN":
        kwargs.update(user="RootManageSharedAccessKey", password=password)
    return BlockingConnection(f"amqp://127.0.0.1:{server.amqp_port}", timeout=10, **kwargs)


@pytest.fixture
def conn(server):
    c = connect(server)
    yield c
    c.close()


def send(conn, address, message):
    """Sends one message and returns its remote outcome (the delivery, settled)."""
    sender = conn.create_sender(address)
    dlv = sender.link.send(message)
    conn.wait(lambda: dlv.settled, msg="waiting for the outcome", timeout=10)
    sender.close()
    return dlv


def test_plain_with_the_namespace_key_sends_without_cbs(conn):
    queue = take()
    assert send(conn, queue, Message(body="plain")).remote_state == Delivery.ACCEPTED
    r = conn.create_receiver(queue)
    m = r.receive(timeout=5)
    assert m.body == "plain"
    r.accept()


def test_a_wrong_plain_password_fails_sasl(server):
    from proton import ConnectionException

    with pytest.raises(ConnectionException):
        connect(server, password="wrong").create_sender(take())


def test_anonymous_links_need_a_cbs_token(server):
    c = connect(server, mechanism="ANONYMOUS")
    try:
        with pytest.raises(LinkDetached) as e:
            c.create_sender(take())
        assert e.value.condition == "amqp:unauthorized-access"
    finally:
        c.close()


def test_an_unknown_entity_is_not_found(conn):
    with pytest.raises(LinkDetached) as e:
        conn.create_receiver("no-such-queue")
    assert e.value.condition == "amqp:not-found"


def test_a_transfer_over_the_entity_limit_is_rejected_with_message_size_exceeded(conn):
    queue = take("small_messages")  # MaxMessageSizeInKilobytes: 1
    sender = conn.create_sender(queue)
    assert sender.link.remote_max_message_size == 1024
    dlv = sender.link.send(Message(body=b"x" * 2048))
    conn.wait(lambda: dlv.settled, timeout=10)
    assert dlv.remote_state == Delivery.REJECTED
    assert dlv.remote.condition.name == "amqp:link:message-size-exceeded"
    # The link goes on: a message inside the limit is accepted.
    ok = sender.link.send(Message(body=b"y" * 100))
    conn.wait(lambda: ok.settled, timeout=10)
    assert ok.remote_state == Delivery.ACCEPTED


def test_every_section_comes_back_as_sent(conn):
    queue = take()
    sent = Message(
        body={"k": [1, 2.5, "three"], "n": None},  # an amqp-value body, not data
        id=12345,  # a ulong message-id
        subject="subject",
        correlation_id=b"binary-correlation",
        content_type="application/x-test",
        group_id="group",
        reply_to_group_id="reply-group",
        properties={"app": "value", "num": 7},
        annotations={symbol("x-custom"): "kept"},
        durable=True,
        priority=7,
    )
    send(conn, queue, sent)
    r = conn.create_receiver(queue)
    m = r.receive(timeout=5)
    r.accept()
    assert m.body == sent.body
    assert m.id == 12345
    assert (m.subject, m.correlation_id, m.content_type, m.group_id, m.reply_to_group_id) == (
        "subject",
        b"binary-correlation",
        "application/x-test",
        "group",
        "reply-group",
    )
    assert m.properties == {"app": "value", "num": 7}
    assert m.annotations[symbol("x-custom")] == "kept"
    assert (m.durable, m.priority, m.delivery_count) == (True, 7, 0)
    for name in ("x-opt-sequence-number", "x-opt-enqueued-time", "x-opt-locked-until"):
        assert symbol(name) in m.annotations, name


def test_peek_lock_transfers_arrive_unsettled(conn):
    queue = take()
    send(conn, queue, Message(body="tagged"))
    r = conn.create_receiver(queue, credit=1)
    conn.wait(lambda: len(r.fetcher.incoming) == 1, timeout=5)
    _, dlv = r.fetcher.incoming[0]
    # (The tag is the lock token, checked through the SDKs: Proton cannot read binary tags.)
    assert not dlv.settled  # peek-lock: the receiver settles
    m = r.receive(timeout=5)
    assert m.body == "tagged"
    r.accept()


def test_released_returns_the_message_without_counting_and_modified_counts(conn):
    queue = take()
    send(conn, queue, Message(body="again"))
    r = conn.create_receiver(queue)
    assert r.receive(timeout=5).delivery_count == 0
    r.release(delivered=False)  # released
    assert r.receive(timeout=5).delivery_count == 0
    r.release(delivered=True)  # modified{delivery-failed}: an abandon
    assert r.receive(timeout=5).delivery_count == 1
    r.accept()


def test_drain_sends_what_there_is_then_uses_up_the_credit(conn):
    queue = take()
    for i in range(3):
        send(conn, queue, Message(body=f"d{i}"))
    r = conn.create_receiver(queue, credit=0)
    link = r.link
    link.drain(10)
    conn.wait(lambda: link.credit == 0 and len(r.fetcher.incoming) == 3, timeout=10)
    time.sleep(0.3)
    assert len(r.fetcher.incoming) == 3
    assert link.credit == 0
    for _ in range(3):
        r.receive(timeout=1)
        r.accept()


def test_receive_and_delete_links_get_settled_transfers(conn, server):
    queue = take()
    for i in range(2):
        send(conn, queue, Message(body=f"rd{i}"))
    r = conn.create_receiver(queue, credit=2, options=AtMostOnce())
    conn.wait(lambda: len(r.fetcher.incoming) == 2, timeout=5)
    assert all(dlv.settled for _, dlv in r.fetcher.incoming)
    assert sorted(r.receive(timeout=5).body for _ in range(2)) == ["rd0", "rd1"]
    r.close()
    # Gone: a new peek-lock receiver finds nothing.
    again = conn.create_receiver(queue, credit=1)
    with pytest.raises(Exception):
        again.receive(timeout=1.5)


def sas_token(resource: str, expiry: int, key: str = "SAS_KEY_VALUE") -> str:
    """A token as the SDKs make one: HMAC-SHA256 over the encoded resource and the expiry."""
    import base64
    import hashlib
    import hmac
    from urllib.parse import quote

    encoded = quote(resource, safe="-_.!~*'()")
    digest = hmac.new(key.encode(), f"{encoded}\n{expiry}".encode(), hashlib.sha256).digest()
    sig = quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={encoded}&sig={sig}&se={expiry}&skn=RootManageSharedAccessKey"


def put_token(conn, audience: str, expiry: int) -> int:
    """Puts a token on $cbs; returns the status code of the answer."""
    replies = conn.create_receiver("$cbs", name=f"cbs-reply-{expiry}-{audience}")
    request = Message(
        body=sas_token(audience, expiry),
        id=f"put-{expiry}",
        reply_to=f"cbs-reply-{expiry}-{audience}",
        properties={"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience},
    )
    sender = conn.create_sender("$cbs")
    sender.send(request)
    answer = replies.receive(timeout=5)  # pre-settled: nothing to accept
    sender.close()
    replies.close()
    return answer.properties["status-code"]


def test_a_link_is_detached_when_its_token_lapses_unrenewed(server):
    from proton import Endpoint

    queue = take()
    c = connect(server, mechanism="ANONYMOUS")
    try:
        assert put_token(c, f"sb://localhost/{queue}", int(time.time()) + 3) == 202
        sender = c.create_sender(queue)
        attached = time.monotonic()
        with pytest.raises(LinkDetached) as e:
            c.wait(lambda: sender.link.state & Endpoint.REMOTE_CLOSED, timeout=8, msg="no detach")
        assert e.value.condition == "amqp:unauthorized-access"
        assert time.monotonic() - attached > 1.5, "detached before the token lapsed"
    finally:
        c.close()


def test_a_renewed_token_keeps_the_link(server):
    from proton import Endpoint

    queue = take()
    c = connect(server, mechanism="ANONYMOUS")
    try:
        assert put_token(c, f"sb://localhost/{queue}", int(time.time()) + 2) == 202
        receiver = c.create_receiver(queue)
        assert put_token(c, f"sb://localhost/{queue}", int(time.time()) + 60) == 202
        deadline = time.time() + 4
        while time.time() < deadline:
            c.container.process()
            time.sleep(0.05)
        assert not (receiver.link.state & Endpoint.REMOTE_CLOSED)
    finally:
        c.close()
