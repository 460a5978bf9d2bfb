"""Queue-level operations: create / delete / list / metadata / properties (sync client)."""

from __future__ import annotations

import itertools

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from conftest import unique_name

MIXED = {"Color": "red", "camelCase": "x", "UPPER": "y"}


def _status_recorder():
    statuses: list[int] = []

    def hook(response):
        statuses.append(response.http_response.status_code)

    return statuses, hook


def test_create_new_queue_is_201(make_queue_client, qname):
    client = make_queue_client(qname)
    statuses, hook = _status_recorder()
    client.create_queue(raw_response_hook=hook)
    try:
        assert statuses == [201]
        props = client.get_queue_properties()
        assert props.name == qname
        assert props.metadata == {}
        assert props.approximate_message_count == 0
    finally:
        client.delete_queue()


def test_create_existing_with_identical_metadata_is_204(make_queue_client, qname):
    client = make_queue_client(qname)
    statuses, hook = _status_recorder()
    client.create_queue(metadata={"k1": "v1"}, raw_response_hook=hook)
    try:
        # The Python SDK turns a 204 into ResourceExistsError(QueueAlreadyExists) client-side;
        # the wire status must be 204, not 409.
        with pytest.raises(ResourceExistsError) as exc:
            client.create_queue(metadata={"k1": "v1"}, raw_response_hook=hook)
        assert statuses == [201, 204]
        assert exc.value.error_code == "QueueAlreadyExists"
        assert client.get_queue_properties().metadata == {"k1": "v1"}
    finally:
        client.delete_queue()


def test_create_existing_without_metadata_is_204(make_queue_client, qname):
    client = make_queue_client(qname)
    statuses, hook = _status_recorder()
    client.create_queue(raw_response_hook=hook)
    try:
        with pytest.raises(ResourceExistsError):
            client.create_queue(raw_response_hook=hook)
        assert statuses == [201, 204]
    finally:
        client.delete_queue()


def test_create_existing_with_metadata_names_in_other_case_is_204(make_queue_client, qname):
    # Metadata names compare case-insensitively, values exactly (digest 3.6).
    client = make_queue_client(qname)
    statuses, hook = _status_recorder()
    client.create_queue(metadata={"Key": "Value"}, raw_response_hook=hook)
    try:
        with pytest.raises(ResourceExistsError):
            client.create_queue(metadata={"key": "Value"}, raw_response_hook=hook)
        assert statuses == [201, 204]
    finally:
        client.delete_queue()


@pytest.mark.parametrize(
    "first,second",
    [
        ({"a": "1"}, {"a": "2"}),  # same name, different value
        (None, {"a": "1"}),  # none vs some
        ({"a": "1"}, None),  # some vs none
        ({"a": "1"}, {"a": "1", "b": "2"}),  # different count
        ({"a": "x"}, {"a": "X"}),  # values compare exactly
    ],
)
def test_create_existing_with_different_metadata_is_409(make_queue_client, qname, first, second):
    client = make_queue_client(qname)
    statuses, hook = _status_recorder()
    client.create_queue(metadata=first, raw_response_hook=hook)
    try:
        with pytest.raises(ResourceExistsError) as exc:
            client.create_queue(metadata=second, raw_response_hook=hook)
        assert statuses == [201, 409]
        assert exc.value.status_code == 409
        assert exc.value.error_code == "QueueAlreadyExists"
        # The original metadata is untouched.
        assert client.get_queue_properties().metadata == (first or {})
    finally:
        client.delete_queue()


def test_service_client_create_and_delete_queue(service, qname):
    statuses, hook = _status_recorder()
    qc = service.create_queue(qname, metadata={"Origin": "service"}, raw_response_hook=hook)
    assert isinstance(qc, QueueClient)
    assert qc.queue_name == qname
    assert qc.get_queue_properties().metadata == {"Origin": "service"}
    service.delete_queue(qname, raw_response_hook=hook)
    assert statuses == [201, 204]
    with pytest.raises(ResourceNotFoundError) as exc:
        qc.get_queue_properties()
    assert exc.value.error_code == "QueueNotFound"


def test_delete_queue_is_204_and_second_delete_is_404(make_queue_client, qname):
    client = make_queue_client(qname)
    client.create_queue()
    client.send_message("goes away with the queue")
    statuses, hook = _status_recorder()
    client.delete_queue(raw_response_hook=hook)
    assert statuses == [204]
    with pytest.raises(ResourceNotFoundError) as exc:
        client.delete_queue()
    assert exc.value.status_code == 404
    assert exc.value.error_code == "QueueNotFound"


def test_recreated_queue_starts_empty(make_queue_client, qname):
    client = make_queue_client(qname)
    client.create_queue(metadata={"gen": "1"})
    client.send_message("old")
    client.delete_queue()
    client.create_queue()
    try:
        props = client.get_queue_properties()
        assert props.metadata == {}
        assert props.approximate_message_count == 0
        assert list(client.peek_messages(max_messages=32)) == []
    finally:
        client.delete_queue()


@pytest.mark.parametrize(
    "op",
    [
        "get_queue_properties",
        "set_queue_metadata",
        "get_queue_access_policy",
        "send_message",
        "receive_messages",
        "peek_messages",
        "clear_messages",
        "delete_queue",
    ],
)
def test_missing_queue_is_queue_not_found(make_queue_client, op):
    client = make_queue_client(unique_name("missing"))
    calls = {
        "get_queue_properties": lambda: client.get_queue_properties(),
        "set_queue_metadata": lambda: client.set_queue_metadata({"a": "b"}),
        "get_queue_access_policy": lambda: client.get_queue_access_policy(),
        "send_message": lambda: client.send_message("x"),
        "receive_messages": lambda: list(client.receive_messages()),
        "peek_messages": lambda: client.peek_messages(),
        "clear_messages": lambda: client.clear_messages(),
        "delete_queue": lambda: client.delete_queue(),
    }
    with pytest.raises(ResourceNotFoundError) as exc:
        calls[op]()
    assert exc.value.status_code == 404
    assert exc.value.error_code == "QueueNotFound"


@pytest.mark.parametrize(
    "name,code",
    [
        ("ab", "OutOfRangeInput"),  # too short
        ("a" * 64, "OutOfRangeInput"),  # too long
        ("Upper", "InvalidResourceName"),
        ("a--b", "InvalidResourceName"),
        ("under_score", "InvalidResourceName"),
        ("-lead", "InvalidResourceName"),
    ],
)
def test_invalid_queue_names_are_rejected(make_queue_client, name, code):
    client = make_queue_client(name)
    with pytest.raises(HttpResponseError) as exc:
        client.create_queue()
    assert exc.value.status_code == 400
    assert exc.value.error_code == code


def test_list_queues_pages_in_alphabetical_order(service, make_queue_client):
    prefix = unique_name("lst")
    suffixes = ["c", "a", "e", "b", "d"]  # deliberately NOT in name order
    names = [f"{prefix}{s}" for s in suffixes]
    clients = [make_queue_client(n) for n in names]
    for c in clients:
        c.create_queue()
    try:
        pager = service.list_queues(name_starts_with=prefix, results_per_page=2).by_page()
        # Bounded: a server that keeps handing out markers must fail, not loop forever.
        pages = [[q.name for q in page] for page in itertools.islice(pager, 6)]
        assert pages == [
            [f"{prefix}a", f"{prefix}b"],
            [f"{prefix}c", f"{prefix}d"],
            [f"{prefix}e"],
        ]
        assert pager.continuation_token is None
        # Plain iteration (the SDK follows NextMarker) sees every queue exactly once, in order.
        listed = service.list_queues(name_starts_with=prefix, results_per_page=3)
        assert [q.name for q in itertools.islice(listed, 20)] == sorted(names)
        assert [q.name for q in service.list_queues(name_starts_with=prefix)] == sorted(names)
    finally:
        for c in clients:
            c.delete_queue()


def test_list_queues_manual_continuation_token(service, make_queue_client):
    prefix = unique_name("tok")
    names = [f"{prefix}{i}" for i in (3, 1, 4, 0, 2)]
    clients = [make_queue_client(n) for n in names]
    for c in clients:
        c.create_queue()
    try:
        seen = []
        token = None
        rounds = 0
        while True:
            pager = service.list_queues(name_starts_with=prefix, results_per_page=2).by_page(continuation_token=token)
            page = next(pager)
            seen.extend(q.name for q in page)
            token = pager.continuation_token
            rounds += 1
            if not token:
                break
            assert rounds < 10
        assert seen == sorted(names)
        assert rounds == 3
    finally:
        for c in clients:
            c.delete_queue()


def test_list_queues_prefix_filters(service, make_queue_client):
    prefix = unique_name("pfx")
    other = unique_name("pfy")
    mine = [make_queue_client(f"{prefix}{i}") for i in range(2)]
    theirs = make_queue_client(f"{other}0")
    for c in [*mine, theirs]:
        c.create_queue()
    try:
        assert [q.name for q in service.list_queues(name_starts_with=prefix)] == [f"{prefix}0", f"{prefix}1"]
        assert [q.name for q in service.list_queues(name_starts_with=unique_name("none"))] == []
    finally:
        for c in [*mine, theirs]:
            c.delete_queue()


def test_list_queues_include_metadata_keeps_case(service, make_queue_client):
    prefix = unique_name("md")
    a = make_queue_client(f"{prefix}a")
    b = make_queue_client(f"{prefix}b")
    a.create_queue(metadata=MIXED)
    b.create_queue()
    try:
        listed = {q.name: q.metadata for q in service.list_queues(name_starts_with=prefix, include_metadata=True)}
        assert listed == {f"{prefix}a": MIXED, f"{prefix}b": {}}
        # Without include=metadata the service sends no Metadata element.
        plain = {q.name: q.metadata for q in service.list_queues(name_starts_with=prefix)}
        assert plain == {f"{prefix}a": None, f"{prefix}b": None}
    finally:
        a.delete_queue()
        b.delete_queue()


def test_create_with_mixed_case_metadata_keeps_case(make_queue_client, qname):
    client = make_queue_client(qname)
    client.create_queue(metadata=MIXED)
    try:
        assert client.get_queue_properties().metadata == MIXED
    finally:
        client.delete_queue()


def test_set_metadata_mixed_case_round_trip(queue):
    statuses, hook = _status_recorder()
    queue.set_queue_metadata(MIXED, raw_response_hook=hook)
    assert statuses == [204]
    assert queue.get_queue_properties().metadata == MIXED


def test_set_metadata_replaces_then_clears(queue):
    queue.set_queue_metadata({"a": "1", "b": "2"})
    assert queue.get_queue_properties().metadata == {"a": "1", "b": "2"}
    queue.set_queue_metadata({"C_3": "three"})
    assert queue.get_queue_properties().metadata == {"C_3": "three"}
    queue.set_queue_metadata(None)
    assert queue.get_queue_properties().metadata == {}


def test_metadata_value_with_spaces_and_punctuation(queue):
    meta = {"note": "hello world, 1+1=2; a/b?c"}
    queue.set_queue_metadata(meta)
    assert queue.get_queue_properties().metadata == meta


def test_approximate_message_count(queue):
    assert queue.get_queue_properties().approximate_message_count == 0
    queue.send_message("one")
    queue.send_message("two")
    queue.send_message("three (invisible)", visibility_timeout=60)
    assert queue.get_queue_properties().approximate_message_count == 3
    # Receiving does not remove a message; deleting does.
    msg = next(iter(queue.receive_messages(visibility_timeout=60)))
    assert queue.get_queue_properties().approximate_message_count == 3
    queue.delete_message(msg)
    assert queue.get_queue_properties().approximate_message_count == 2
    queue.clear_messages()
    assert queue.get_queue_properties().approximate_message_count == 0
