"""Message operations: send / receive / peek / update / delete / clear (sync client)."""

from __future__ import annotations

import base64
import itertools
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

NEVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
SEVEN_DAYS = timedelta(seconds=604800)
# Server and tests share one clock; the wire carries whole seconds.
SLACK = timedelta(seconds=5)


def now() -> datetime:
    return datetime.now(timezone.utc)


def assert_close(actual: datetime, expected: datetime, slack: timedelta = SLACK):
    assert actual.tzinfo is not None, f"naive datetime {actual!r}"
    assert abs(actual - expected) <= slack, f"{actual} not within {slack} of {expected}"


def wait_past(deadline: datetime, extra: float = 1.1):
    """Sleep until `deadline` (whole-second wire precision) has certainly passed."""
    delay = (deadline - now()).total_seconds() + extra
    if delay > 0:
        time.sleep(delay)


def receive_one(queue, **kwargs):
    got = list(itertools.islice(queue.receive_messages(max_messages=1, **kwargs), 2))
    assert len(got) == 1, f"expected one message, got {got!r}"
    return got[0]


def peek_all(queue):
    return list(queue.peek_messages(max_messages=32))


# ---------------------------------------------------------------- send


def test_send_message_response_fields(queue):
    before = now()
    sent = queue.send_message("hello")
    assert isinstance(sent.id, str) and sent.id
    assert isinstance(sent.pop_receipt, str) and sent.pop_receipt
    assert sent.content == "hello"
    assert_close(sent.inserted_on, before)
    # Default TTL is 7 days; default visibility timeout is 0.
    assert sent.expires_on - sent.inserted_on == SEVEN_DAYS
    assert sent.next_visible_on == sent.inserted_on
    [peeked] = peek_all(queue)
    assert peeked.id == sent.id
    assert peeked.inserted_on == sent.inserted_on
    assert peeked.expires_on == sent.expires_on


def test_send_with_visibility_timeout_and_ttl(queue):
    sent = queue.send_message("later", visibility_timeout=30, time_to_live=120)
    assert sent.expires_on - sent.inserted_on == timedelta(seconds=120)
    assert sent.next_visible_on - sent.inserted_on == timedelta(seconds=30)
    assert peek_all(queue) == []
    assert list(queue.receive_messages()) == []
    assert queue.get_queue_properties().approximate_message_count == 1


def test_send_ttl_minus_one_never_expires(queue):
    sent = queue.send_message("forever", time_to_live=-1)
    assert sent.expires_on == NEVER
    [peeked] = peek_all(queue)
    assert peeked.expires_on == NEVER
    received = receive_one(queue)
    assert received.expires_on == NEVER


def test_send_ttl_longer_than_seven_days(queue):
    sent = queue.send_message("a month", time_to_live=30 * 86400)
    assert sent.expires_on - sent.inserted_on == timedelta(days=30)


def test_send_rejects_ttl_zero(queue):
    with pytest.raises(HttpResponseError) as exc:
        queue.send_message("x", time_to_live=0)
    assert exc.value.status_code == 400


def test_send_rejects_visibility_timeout_above_seven_days(queue):
    with pytest.raises(HttpResponseError) as exc:
        queue.send_message("x", visibility_timeout=604801, time_to_live=-1)
    assert exc.value.status_code == 400
    assert exc.value.error_code == "OutOfRangeQueryParameterValue"


def test_message_expires_after_ttl(queue):
    sent = queue.send_message("short-lived", time_to_live=1)
    wait_past(sent.expires_on)
    assert peek_all(queue) == []
    assert list(queue.receive_messages()) == []


def test_invisible_message_becomes_visible(queue):
    sent = queue.send_message("soon", visibility_timeout=1)
    assert peek_all(queue) == []
    wait_past(sent.next_visible_on)
    [peeked] = peek_all(queue)
    assert peeked.content == "soon"
    assert peeked.dequeue_count == 0


# ---------------------------------------------------------------- receive


def test_receive_message_fields(queue):
    sent = queue.send_message("payload")
    before = now()
    msg = receive_one(queue, visibility_timeout=30)
    assert msg.id == sent.id
    assert msg.content == "payload"
    assert msg.dequeue_count == 1
    assert isinstance(msg.pop_receipt, str) and msg.pop_receipt
    assert msg.pop_receipt != sent.pop_receipt
    assert msg.inserted_on == sent.inserted_on
    assert msg.expires_on == sent.expires_on
    assert_close(msg.next_visible_on, before + timedelta(seconds=30))
    # Invisible now: neither peek nor a second receive sees it, but it still counts.
    assert peek_all(queue) == []
    assert list(queue.receive_messages()) == []
    assert queue.get_queue_properties().approximate_message_count == 1


def test_receive_on_empty_queue_returns_nothing(queue):
    assert list(queue.receive_messages(messages_per_page=32)) == []
    assert queue.receive_message() is None


def test_receive_message_singular(queue):
    queue.send_message("only")
    msg = queue.receive_message(visibility_timeout=10)
    assert msg.content == "only"
    assert msg.dequeue_count == 1


def test_dequeue_count_increments_and_receipts_change(queue):
    queue.send_message("again and again")
    first = receive_one(queue, visibility_timeout=1)
    assert first.dequeue_count == 1
    wait_past(first.next_visible_on)
    second = receive_one(queue, visibility_timeout=1)
    assert second.id == first.id
    assert second.dequeue_count == 2
    assert second.pop_receipt != first.pop_receipt
    wait_past(second.next_visible_on)
    [peeked] = peek_all(queue)
    assert peeked.dequeue_count == 2


def test_receive_batches_up_to_32(queue):
    texts = [f"m{i:02d}" for i in range(40)]
    for t in texts:
        queue.send_message(t)
    five = list(itertools.islice(queue.receive_messages(max_messages=5, visibility_timeout=60), 10))
    assert len(five) == 5
    pager = queue.receive_messages(messages_per_page=32, visibility_timeout=60).by_page()
    page = list(next(pager))
    assert len(page) == 32
    rest = list(itertools.islice(queue.receive_messages(messages_per_page=32, visibility_timeout=60), 50))
    assert len(rest) == 3
    got = [m.content for m in five + page + rest]
    assert sorted(got) == texts  # every message exactly once
    assert all(m.dequeue_count == 1 for m in five + page + rest)
    assert len({m.id for m in five + page + rest}) == 40


@pytest.mark.parametrize("n", [0, 33])
def test_receive_rejects_numofmessages_out_of_range(queue, n):
    queue.send_message("x")
    with pytest.raises(HttpResponseError) as exc:
        list(itertools.islice(queue.receive_messages(messages_per_page=n), 40))
    assert exc.value.status_code == 400
    assert exc.value.error_code == "OutOfRangeQueryParameterValue"


# ---------------------------------------------------------------- peek


def test_peek_has_no_receipt_and_does_not_dequeue(queue):
    sent = [queue.send_message(t) for t in ("p1", "p2", "p3")]
    for _ in range(2):
        peeked = peek_all(queue)
        assert sorted(m.content for m in peeked) == ["p1", "p2", "p3"]
        assert {m.id for m in peeked} == {s.id for s in sent}
        for m in peeked:
            assert m.pop_receipt is None
            assert m.next_visible_on is None
            assert m.dequeue_count == 0
    # Default peek returns one message.
    assert len(queue.peek_messages()) == 1
    # Peeking left everything receivable.
    got = list(queue.receive_messages(messages_per_page=32, visibility_timeout=30))
    assert sorted(m.content for m in got) == ["p1", "p2", "p3"]
    assert all(m.dequeue_count == 1 for m in got)


# ---------------------------------------------------------------- update


def test_update_message_content_and_visibility(queue):
    queue.send_message("original")
    msg = receive_one(queue, visibility_timeout=30)
    before = now()
    updated = queue.update_message(msg, pop_receipt=msg.pop_receipt, content="changed", visibility_timeout=0)
    assert isinstance(updated.pop_receipt, str) and updated.pop_receipt
    assert updated.pop_receipt != msg.pop_receipt
    assert updated.id == msg.id
    assert updated.content == "changed"
    assert_close(updated.next_visible_on, before)
    [peeked] = peek_all(queue)
    assert peeked.id == msg.id
    assert peeked.content == "changed"
    assert peeked.dequeue_count == 1  # update does not dequeue
    # The receipt that was replaced is dead for update and delete.
    with pytest.raises(ResourceNotFoundError) as exc:
        queue.update_message(msg.id, pop_receipt=msg.pop_receipt, content="stale", visibility_timeout=0)
    assert exc.value.status_code == 404
    assert exc.value.error_code == "MessageNotFound"
    with pytest.raises(ResourceNotFoundError) as exc:
        queue.delete_message(msg.id, msg.pop_receipt)
    assert exc.value.status_code == 404
    assert exc.value.error_code == "MessageNotFound"
    # The new one works.
    queue.delete_message(msg.id, updated.pop_receipt)
    assert peek_all(queue) == []
    assert queue.get_queue_properties().approximate_message_count == 0


def test_update_visibility_only_keeps_content(queue):
    queue.send_message("keep me")
    msg = receive_one(queue, visibility_timeout=30)
    before = now()
    hidden = queue.update_message(msg.id, pop_receipt=msg.pop_receipt, visibility_timeout=60)
    assert_close(hidden.next_visible_on, before + timedelta(seconds=60))
    assert peek_all(queue) == []
    shown = queue.update_message(msg.id, pop_receipt=hidden.pop_receipt, visibility_timeout=0)
    assert shown.pop_receipt != hidden.pop_receipt
    [peeked] = peek_all(queue)
    assert peeked.content == "keep me"
    assert peeked.dequeue_count == 1


def test_update_with_send_receipt(queue):
    sent = queue.send_message("from send")
    updated = queue.update_message(sent.id, pop_receipt=sent.pop_receipt, content="updated", visibility_timeout=0)
    [peeked] = peek_all(queue)
    assert peeked.content == "updated"
    assert peeked.dequeue_count == 0
    queue.delete_message(sent.id, updated.pop_receipt)
    assert peek_all(queue) == []


def test_update_rejects_oversized_content(queue):
    queue.send_message("small")
    msg = receive_one(queue, visibility_timeout=30)
    with pytest.raises(HttpResponseError) as exc:
        queue.update_message(msg, pop_receipt=msg.pop_receipt, content="a" * 65537, visibility_timeout=0)
    assert exc.value.status_code == 413
    assert exc.value.error_code == "RequestBodyTooLarge"


# ---------------------------------------------------------------- delete / clear


def test_delete_message_then_stale_receipt_is_message_not_found(queue):
    queue.send_message("bye")
    msg = receive_one(queue, visibility_timeout=30)
    statuses = []
    queue.delete_message(msg, raw_response_hook=lambda r: statuses.append(r.http_response.status_code))
    assert statuses == [204]
    assert queue.get_queue_properties().approximate_message_count == 0
    with pytest.raises(ResourceNotFoundError) as exc:
        queue.delete_message(msg)
    assert exc.value.status_code == 404
    assert exc.value.error_code == "MessageNotFound"


def test_delete_with_send_receipt(queue):
    sent = queue.send_message("delete via send receipt")
    queue.delete_message(sent.id, sent.pop_receipt)
    assert peek_all(queue) == []


def test_receipt_from_earlier_dequeue_is_rejected(queue):
    queue.send_message("redelivered")
    first = receive_one(queue, visibility_timeout=1)
    wait_past(first.next_visible_on)
    second = receive_one(queue, visibility_timeout=30)
    with pytest.raises(ResourceNotFoundError) as exc:
        queue.delete_message(first.id, first.pop_receipt)
    assert exc.value.status_code == 404
    assert exc.value.error_code == "MessageNotFound"
    queue.delete_message(second.id, second.pop_receipt)
    assert queue.get_queue_properties().approximate_message_count == 0


def test_receipt_still_valid_after_timeout_if_not_redequeued(queue):
    queue.send_message("late delete")
    msg = receive_one(queue, visibility_timeout=1)
    wait_past(msg.next_visible_on)
    queue.delete_message(msg.id, msg.pop_receipt)
    assert peek_all(queue) == []


def test_delete_unknown_message_id_is_message_not_found(queue):
    sent = queue.send_message("real")
    with pytest.raises(ResourceNotFoundError) as exc:
        queue.delete_message(str(uuid.uuid4()), sent.pop_receipt)
    assert exc.value.status_code == 404
    assert exc.value.error_code == "MessageNotFound"


def test_clear_messages(queue):
    for i in range(3):
        queue.send_message(f"visible {i}")
    for i in range(2):
        queue.send_message(f"invisible {i}", visibility_timeout=120)
    assert queue.get_queue_properties().approximate_message_count == 5
    statuses = []
    queue.clear_messages(raw_response_hook=lambda r: statuses.append(r.http_response.status_code))
    assert statuses == [204]
    assert queue.get_queue_properties().approximate_message_count == 0
    assert peek_all(queue) == []
    assert list(queue.receive_messages()) == []


# ---------------------------------------------------------------- size limit


def test_message_of_exactly_64_kib_is_accepted(queue):
    text = "a" * 65536
    queue.send_message(text)
    msg = receive_one(queue, visibility_timeout=30)
    assert len(msg.content) == 65536
    assert msg.content == text


def test_message_over_64_kib_is_413(queue):
    with pytest.raises(HttpResponseError) as exc:
        queue.send_message("a" * 65537)
    assert exc.value.status_code == 413
    assert exc.value.error_code == "RequestBodyTooLarge"
    assert queue.get_queue_properties().approximate_message_count == 0


def test_multibyte_message_of_64_kib_utf8_is_accepted(queue):
    text = "é" * 32768  # 65536 bytes of UTF-8
    queue.send_message(text)
    [peeked] = peek_all(queue)
    assert peeked.content == text


# ---------------------------------------------------------------- fidelity

FIDELITY = {
    "xml_specials": "<&>\"' and &amp; &lt;tag&gt; ]]> <![CDATA[x]]>",
    "xml_lookalike": "<QueueMessage><MessageText>inner</MessageText></QueueMessage>",
    "newlines": "line1\nline2\n\nline4\n",
    "tabs": "col1\tcol2\t\tcol4",
    "spaces": "  leading and trailing  ",
    "non_ascii": "Grüße, ½ €, 日本語, Ελληνικά, עברית",
    "emoji": "emoji 😀🚀 and astral 𝄞 \U0001F9EA",
    "json": '{"a": [1, 2, {"b": "c\\"d"}], "e": null}',
    "percent_and_plus": "100% + 1 = a+b/c=d?e&f",
}


@pytest.mark.parametrize("key", sorted(FIDELITY))
def test_message_text_round_trips_exactly(queue, key):
    text = FIDELITY[key]
    queue.send_message(text)
    [peeked] = peek_all(queue)
    assert peeked.content == text
    msg = receive_one(queue, visibility_timeout=30)
    assert msg.content == text
    updated_text = text + " (updated)"
    queue.update_message(msg, pop_receipt=msg.pop_receipt, content=updated_text, visibility_timeout=0)
    [peeked] = peek_all(queue)
    assert peeked.content == updated_text


def test_crlf_is_normalized_like_xml(queue):
    # The SDK sends CR LF raw inside XML character data; an XML 1.0 processor (and the
    # real service) normalizes line ends to LF (digest 2.4 / 7.3).
    queue.send_message("a\r\nb\rc")
    [peeked] = peek_all(queue)
    assert peeked.content == "a\nb\nc"


def test_text_base64_policy_round_trip(server, make_queue_client, queue):
    encoded = make_queue_client(
        queue.queue_name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )
    text = "base64 text: <&> ü 😀\r\n"
    encoded.send_message(text)
    # On the wire (and to a plain client) it is base64 of the UTF-8 bytes.
    [raw] = peek_all(queue)
    assert raw.content == base64.b64encode(text.encode("utf-8")).decode("ascii")
    [peeked] = encoded.peek_messages()
    assert peeked.content == text
    msg = receive_one(encoded, visibility_timeout=30)
    assert msg.content == text


def test_binary_base64_policy_round_trip(make_queue_client, queue):
    binary = make_queue_client(
        queue.queue_name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    payload = bytes(range(256)) * 4
    binary.send_message(payload)
    [raw] = peek_all(queue)
    assert raw.content == base64.b64encode(payload).decode("ascii")
    msg = receive_one(binary, visibility_timeout=30)
    assert msg.content == payload


def test_largest_base64_payload_fits(make_queue_client, queue):
    binary = make_queue_client(
        queue.queue_name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    payload = bytes(i % 251 for i in range(49152))  # base64 -> exactly 65536 chars
    binary.send_message(payload)
    [peeked] = binary.peek_messages()
    assert peeked.content == payload
