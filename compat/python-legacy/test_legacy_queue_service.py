"""azure==0.11.1 `azure.storage.QueueService` against the server.

This 2015 SDK sends x-ms-version 2014-02-14 and signs an empty body's Content-Length as "0"
(digest 6.1 / 9.8) -- every create/delete/clear request exercises that. Put Message at this
version returns 201 with no body (digest 3.12).
"""

from __future__ import annotations

import time

import pytest
from azure import WindowsAzureConflictError, WindowsAzureMissingResourceError
from azure.storage import X_MS_VERSION

from conftest import unique_name


def test_sdk_is_the_legacy_one():
    import azure

    assert azure.__version__ == "0.11.1"
    assert X_MS_VERSION == "2014-02-14"


def test_create_queue_then_idempotent_then_conflict(svc, qname):
    assert svc.create_queue(qname) is True
    assert svc.recorder.last == (201, None)
    # Existing queue, same (no) metadata: 204, which this SDK reports as False.
    assert svc.create_queue(qname) is False
    assert svc.recorder.last == (204, None)
    with pytest.raises(WindowsAzureConflictError):
        svc.create_queue(qname, fail_on_exist=True)  # the SDK raises on the 204 itself
    # Different metadata: 409 QueueAlreadyExists (swallowed as False by default).
    assert svc.create_queue(qname, x_ms_meta_name_values={"k": "v"}) is False
    assert svc.recorder.last == (409, "QueueAlreadyExists")


def test_create_with_metadata_and_read_it_back(svc, qname):
    assert svc.create_queue(qname, x_ms_meta_name_values={"Color": "red", "size": "L"}) is True
    meta = svc.get_queue_metadata(qname)
    # This SDK lowercases response header names itself.
    assert dict(meta) == {"x-ms-approximate-messages-count": "0", "x-ms-meta-color": "red", "x-ms-meta-size": "L"}
    svc.set_queue_metadata(qname, {"Other": "1"})
    assert svc.recorder.last == (204, None)
    meta = svc.get_queue_metadata(qname)
    assert dict(meta) == {"x-ms-approximate-messages-count": "0", "x-ms-meta-other": "1"}


def test_put_peek_get_update_delete(svc, qname):
    svc.create_queue(qname)
    assert svc.put_message(qname, "first <&> message") is None
    assert svc.recorder.last == (201, None)
    svc.put_message(qname, "second")
    svc.put_message(qname, "third")

    peeked = svc.peek_messages(qname, numofmessages=32)
    assert sorted(m.message_text for m in peeked) == ["first <&> message", "second", "third"]
    for m in peeked:
        assert m.dequeue_count == "0"
        assert m.pop_receipt == ""
        assert m.time_next_visible == ""
    assert len(svc.peek_messages(qname)) == 1

    got = svc.get_messages(qname, numofmessages=2, visibilitytimeout=30)
    assert len(got) == 2
    for m in got:
        assert m.dequeue_count == "1"
        assert m.pop_receipt
        assert m.time_next_visible.endswith(" GMT")
    [rest] = svc.get_messages(qname, numofmessages=32, visibilitytimeout=30)
    everything = sorted(m.message_text for m in [*got, rest])
    assert everything == ["first <&> message", "second", "third"]
    assert list(svc.get_messages(qname)) == []  # all invisible now
    assert svc.get_queue_metadata(qname)["x-ms-approximate-messages-count"] == "3"

    target = got[0]
    result = svc.update_message(qname, target.message_id, "updated text", target.pop_receipt, 0)
    assert svc.recorder.last == (204, None)
    assert result["x-ms-popreceipt"] and result["x-ms-popreceipt"] != target.pop_receipt
    assert result["x-ms-time-next-visible"].endswith(" GMT")
    [visible] = svc.peek_messages(qname, numofmessages=32)
    assert visible.message_id == target.message_id
    assert visible.message_text == "updated text"
    assert visible.dequeue_count == "1"

    # Stale receipt (replaced by the update): 404 MessageNotFound.
    with pytest.raises(WindowsAzureMissingResourceError):
        svc.delete_message(qname, target.message_id, target.pop_receipt)
    assert svc.recorder.last == (404, "MessageNotFound")

    svc.delete_message(qname, target.message_id, result["x-ms-popreceipt"])
    assert svc.recorder.last == (204, None)
    for m in [got[1], rest]:
        svc.delete_message(qname, m.message_id, m.pop_receipt)
    assert svc.get_queue_metadata(qname)["x-ms-approximate-messages-count"] == "0"
    assert list(svc.peek_messages(qname, numofmessages=32)) == []


def test_get_messages_visibility_timeout_and_dequeue_count(svc, qname):
    svc.create_queue(qname)
    svc.put_message(qname, "comes back")
    [first] = svc.get_messages(qname, numofmessages=1, visibilitytimeout=1)
    assert first.dequeue_count == "1"
    assert list(svc.peek_messages(qname)) == []
    time.sleep(2.2)
    [second] = svc.get_messages(qname, numofmessages=1, visibilitytimeout=30)
    assert second.message_id == first.message_id
    assert second.dequeue_count == "2"
    assert second.pop_receipt != first.pop_receipt


def test_put_message_with_visibility_and_ttl(svc, qname):
    svc.create_queue(qname)
    svc.put_message(qname, "hidden", visibilitytimeout=60, messagettl=120)
    assert list(svc.peek_messages(qname)) == []
    assert svc.get_queue_metadata(qname)["x-ms-approximate-messages-count"] == "1"
    svc.put_message(qname, "visible", messagettl=3600)
    [m] = svc.peek_messages(qname, numofmessages=32)
    assert m.message_text == "visible"


def test_message_text_fidelity(svc, qname):
    svc.create_queue(qname)
    text = "xml <&> \"quotes\" 'apos' ünïcödé 日本 😀\ttab\nnewline"
    svc.put_message(qname, text)
    [m] = svc.peek_messages(qname)
    assert m.message_text == text


def test_clear_messages(svc, qname):
    svc.create_queue(qname)
    for i in range(3):
        svc.put_message(qname, f"m{i}")
    svc.put_message(qname, "invisible", visibilitytimeout=60)
    svc.clear_messages(qname)
    assert svc.recorder.last == (204, None)
    assert svc.get_queue_metadata(qname)["x-ms-approximate-messages-count"] == "0"


def test_list_queues_with_prefix(svc):
    prefix = unique_name("leglist")
    names = [f"{prefix}{c}" for c in "cab"]
    for n in names:
        svc.create_queue(n)
    try:
        result = svc.list_queues(prefix=prefix)
        assert [q.name for q in result] == sorted(names)
    finally:
        for n in names:
            svc.delete_queue(n)


def test_delete_queue(svc, qname):
    svc.create_queue(qname)
    svc.put_message(qname, "dies with the queue")
    assert svc.delete_queue(qname) is True
    assert svc.recorder.last == (204, None)
    assert svc.delete_queue(qname) is False
    assert svc.recorder.last == (404, "QueueNotFound")
    with pytest.raises(WindowsAzureMissingResourceError):
        svc.delete_queue(qname, fail_not_exist=True)
    with pytest.raises(WindowsAzureMissingResourceError):
        svc.get_queue_metadata(qname)
    assert svc.recorder.last == (404, "QueueNotFound")
