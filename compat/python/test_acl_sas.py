"""Stored access policies (queue ACL), SAS (service, account, stored policy) and auth failures."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.storage.queue import (
    AccessPolicy,
    AccountSasPermissions,
    QueueClient,
    QueueSasPermissions,
    QueueServiceClient,
    ResourceTypes,
    generate_account_sas,
    generate_queue_sas,
)

from conftest import CLIENT_KWARGS, unique_name

RAUP = QueueSasPermissions(read=True, add=True, update=True, process=True)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def parse_iso(value) -> datetime:
    assert isinstance(value, str), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def sas_queue_client(server, queue_name: str, sas: str) -> QueueClient:
    return QueueClient(server.account_url, queue_name, credential=sas, **CLIENT_KWARGS)


def sas_service_client(server, sas: str) -> QueueServiceClient:
    return QueueServiceClient(server.account_url, credential=sas, **CLIENT_KWARGS)


def queue_sas(server, queue_name, **kwargs) -> str:
    return generate_queue_sas(server.account, queue_name, server.key, **kwargs)


def assert_forbidden(exc_info, code: str):
    assert exc_info.value.status_code == 403
    assert exc_info.value.error_code == code


# ------------------------------------------------------------------ queue ACL


def test_access_policy_round_trip_five_identifiers(queue):
    start = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    expiry = datetime(2031, 6, 7, 8, 9, 10, tzinfo=timezone.utc)
    perms = {
        "policy-r": QueueSasPermissions(read=True),
        "policy-a": QueueSasPermissions(add=True),
        "policy-u": QueueSasPermissions(update=True),
        "policy-p": QueueSasPermissions(process=True),
        "policy-raup": RAUP,
    }
    statuses = []
    queue.set_queue_access_policy(
        {k: AccessPolicy(permission=p, start=start, expiry=expiry) for k, p in perms.items()},
        raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
    )
    assert statuses == [204]
    got = queue.get_queue_access_policy()
    assert sorted(got) == sorted(perms)
    for name, p in perms.items():
        assert got[name].permission == str(p)
        # The SDK hands back the wire strings; the service may write 0-7 fractional digits.
        assert parse_iso(got[name].start) == start
        assert parse_iso(got[name].expiry) == expiry
    assert got["policy-raup"].permission == "raup"


def test_access_policy_with_permission_only(queue):
    # Start and Expiry are optional in a stored policy (the SAS may supply them); unset
    # fields are left out on the wire and read back as None.
    queue.set_queue_access_policy({"ponly": AccessPolicy(permission=QueueSasPermissions(read=True, process=True))})
    got = queue.get_queue_access_policy()
    assert list(got) == ["ponly"]
    policy = got["ponly"]
    assert (policy.permission, policy.start, policy.expiry) == ("rp", None, None)


def test_access_policy_replace_and_clear(queue):
    expiry = utcnow() + timedelta(hours=1)
    queue.set_queue_access_policy({"one": AccessPolicy(permission=QueueSasPermissions(read=True), expiry=expiry)})
    assert list(queue.get_queue_access_policy()) == ["one"]
    queue.set_queue_access_policy({"two": AccessPolicy(permission=QueueSasPermissions(add=True), expiry=expiry)})
    got = queue.get_queue_access_policy()
    assert list(got) == ["two"]
    assert got["two"].permission == "a"
    queue.set_queue_access_policy({})
    assert queue.get_queue_access_policy() == {}


def test_new_queue_has_no_access_policies(queue):
    assert queue.get_queue_access_policy() == {}


def test_six_access_policies_is_400(queue):
    expiry = utcnow() + timedelta(hours=1)
    six = {f"p{i}": AccessPolicy(permission=QueueSasPermissions(read=True), expiry=expiry) for i in range(6)}
    with pytest.raises(HttpResponseError) as exc:
        queue.set_queue_access_policy(six)
    assert exc.value.status_code == 400
    assert queue.get_queue_access_policy() == {}


# ------------------------------------------------------------------ service SAS


def test_queue_sas_raup_send_receive_update_peek_delete(server, queue):
    sas = queue_sas(server, queue.queue_name, permission=RAUP,
                    start=utcnow() - timedelta(minutes=5), expiry=utcnow() + timedelta(hours=1))
    client = sas_queue_client(server, queue.queue_name, sas)
    sent = client.send_message("via sas")
    assert sent.content == "via sas"
    [peeked] = client.peek_messages()
    assert peeked.content == "via sas"
    assert client.get_queue_properties().approximate_message_count == 1
    msg = next(iter(client.receive_messages(visibility_timeout=30)))
    assert msg.id == sent.id
    assert msg.dequeue_count == 1
    updated = client.update_message(msg, pop_receipt=msg.pop_receipt, content="updated via sas", visibility_timeout=0)
    [peeked] = client.peek_messages()
    assert peeked.content == "updated via sas"
    client.delete_message(msg.id, updated.pop_receipt)
    assert client.peek_messages() == []


def test_queue_sas_string_permission(server, queue):
    sas = queue_sas(server, queue.queue_name, permission="raup", expiry=utcnow() + timedelta(hours=1))
    client = sas_queue_client(server, queue.queue_name, sas)
    client.send_message("string perms")
    assert [m.content for m in client.peek_messages()] == ["string perms"]


def test_queue_sas_read_only_cannot_send(server, queue):
    queue.send_message("existing")
    sas = queue_sas(server, queue.queue_name, permission=QueueSasPermissions(read=True),
                    expiry=utcnow() + timedelta(hours=1))
    client = sas_queue_client(server, queue.queue_name, sas)
    assert [m.content for m in client.peek_messages()] == ["existing"]
    with pytest.raises(HttpResponseError) as exc:
        client.send_message("nope")
    assert_forbidden(exc, "AuthorizationPermissionMismatch")
    with pytest.raises(HttpResponseError) as exc:
        list(client.receive_messages())
    assert_forbidden(exc, "AuthorizationPermissionMismatch")
    assert queue.get_queue_properties().approximate_message_count == 1


def test_queue_sas_add_only_cannot_peek(server, queue):
    sas = queue_sas(server, queue.queue_name, permission=QueueSasPermissions(add=True),
                    expiry=utcnow() + timedelta(hours=1))
    client = sas_queue_client(server, queue.queue_name, sas)
    client.send_message("write only")
    with pytest.raises(HttpResponseError) as exc:
        client.peek_messages()
    assert_forbidden(exc, "AuthorizationPermissionMismatch")
    assert [m.content for m in queue.peek_messages()] == ["write only"]


def test_queue_sas_cannot_read_acl(server, queue):
    sas = queue_sas(server, queue.queue_name, permission=RAUP, expiry=utcnow() + timedelta(hours=1))
    client = sas_queue_client(server, queue.queue_name, sas)
    with pytest.raises(HttpResponseError) as exc:
        client.get_queue_access_policy()
    assert_forbidden(exc, "AuthorizationFailure")


def test_queue_sas_cannot_set_metadata_or_clear(server, queue):
    sas = queue_sas(server, queue.queue_name, permission=RAUP, expiry=utcnow() + timedelta(hours=1))
    client = sas_queue_client(server, queue.queue_name, sas)
    queue.send_message("stays")
    with pytest.raises(HttpResponseError) as exc:
        client.set_queue_metadata({"a": "b"})
    assert exc.value.status_code == 403
    with pytest.raises(HttpResponseError) as exc:
        client.clear_messages()
    assert exc.value.status_code == 403
    assert queue.get_queue_properties().metadata == {}
    assert queue.get_queue_properties().approximate_message_count == 1


def test_queue_sas_for_another_queue_is_rejected(server, queue, make_queue_client):
    other = make_queue_client(unique_name("other"))
    other.create_queue()
    try:
        sas = queue_sas(server, queue.queue_name, permission=RAUP, expiry=utcnow() + timedelta(hours=1))
        client = sas_queue_client(server, other.queue_name, sas)
        with pytest.raises(ClientAuthenticationError) as exc:
            client.send_message("wrong queue")
        assert_forbidden(exc, "AuthenticationFailed")
        assert other.get_queue_properties().approximate_message_count == 0
    finally:
        other.delete_queue()


def test_expired_queue_sas_is_authentication_failed(server, queue):
    sas = queue_sas(server, queue.queue_name, permission=RAUP,
                    start=utcnow() - timedelta(hours=2), expiry=utcnow() - timedelta(minutes=1))
    client = sas_queue_client(server, queue.queue_name, sas)
    with pytest.raises(ClientAuthenticationError) as exc:
        client.send_message("too late")
    assert_forbidden(exc, "AuthenticationFailed")


def test_not_yet_valid_queue_sas_is_authentication_failed(server, queue):
    sas = queue_sas(server, queue.queue_name, permission=RAUP,
                    start=utcnow() + timedelta(hours=1), expiry=utcnow() + timedelta(hours=2))
    client = sas_queue_client(server, queue.queue_name, sas)
    with pytest.raises(ClientAuthenticationError) as exc:
        client.peek_messages()
    assert_forbidden(exc, "AuthenticationFailed")


def test_tampered_queue_sas_is_authentication_failed(server, queue):
    sas = queue_sas(server, queue.queue_name, permission=QueueSasPermissions(read=True),
                    expiry=utcnow() + timedelta(hours=1))
    # Upgrade the permissions without re-signing.
    tampered = sas.replace("sp=r", "sp=raup")
    assert tampered != sas
    client = sas_queue_client(server, queue.queue_name, tampered)
    with pytest.raises(ClientAuthenticationError) as exc:
        client.send_message("forged")
    assert_forbidden(exc, "AuthenticationFailed")


# ------------------------------------------------------------------ stored access policy SAS


def test_stored_policy_sas(server, queue):
    queue.set_queue_access_policy(
        {"policy1": AccessPolicy(permission=RAUP, start=utcnow() - timedelta(minutes=5),
                                 expiry=utcnow() + timedelta(hours=1))}
    )
    sas = queue_sas(server, queue.queue_name, policy_id="policy1")
    assert "si=policy1" in sas and "sp=" not in sas and "se=" not in sas
    client = sas_queue_client(server, queue.queue_name, sas)
    client.send_message("policy message")
    msg = next(iter(client.receive_messages(visibility_timeout=30)))
    assert msg.content == "policy message"
    client.delete_message(msg)
    assert client.peek_messages() == []


def test_stored_policy_permissions_are_enforced(server, queue):
    queue.set_queue_access_policy(
        {"readonly": AccessPolicy(permission=QueueSasPermissions(read=True), expiry=utcnow() + timedelta(hours=1))}
    )
    client = sas_queue_client(server, queue.queue_name, queue_sas(server, queue.queue_name, policy_id="readonly"))
    assert client.peek_messages() == []
    with pytest.raises(HttpResponseError) as exc:
        client.send_message("not allowed")
    assert_forbidden(exc, "AuthorizationPermissionMismatch")


def test_stored_policy_with_expiry_in_sas(server, queue):
    # Permission from the policy, expiry from the token.
    queue.set_queue_access_policy({"ponly": AccessPolicy(permission=QueueSasPermissions(read=True, add=True))})
    sas = queue_sas(server, queue.queue_name, policy_id="ponly", expiry=utcnow() + timedelta(hours=1))
    client = sas_queue_client(server, queue.queue_name, sas)
    client.send_message("mixed")
    assert [m.content for m in client.peek_messages()] == ["mixed"]


def test_expired_stored_policy_is_authentication_failed(server, queue):
    queue.set_queue_access_policy(
        {"old": AccessPolicy(permission=RAUP, start=utcnow() - timedelta(hours=2),
                             expiry=utcnow() - timedelta(minutes=1))}
    )
    client = sas_queue_client(server, queue.queue_name, queue_sas(server, queue.queue_name, policy_id="old"))
    with pytest.raises(ClientAuthenticationError) as exc:
        client.peek_messages()
    assert_forbidden(exc, "AuthenticationFailed")


def test_unknown_or_removed_stored_policy_is_authentication_failed(server, queue):
    client = sas_queue_client(server, queue.queue_name, queue_sas(server, queue.queue_name, policy_id="nosuch"))
    with pytest.raises(ClientAuthenticationError) as exc:
        client.peek_messages()
    assert_forbidden(exc, "AuthenticationFailed")
    # Revocation: a SAS bound to a policy stops working once the policy is removed.
    queue.set_queue_access_policy({"temp": AccessPolicy(permission=RAUP, expiry=utcnow() + timedelta(hours=1))})
    client = sas_queue_client(server, queue.queue_name, queue_sas(server, queue.queue_name, policy_id="temp"))
    assert client.peek_messages() == []
    queue.set_queue_access_policy({})
    with pytest.raises(ClientAuthenticationError) as exc:
        client.peek_messages()
    assert_forbidden(exc, "AuthenticationFailed")


# ------------------------------------------------------------------ account SAS

ALL_TYPES = ResourceTypes(service=True, container=True, object=True)
ALL_PERMS = AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True,
                                  update=True, process=True)


def account_sas(server, resource_types=ALL_TYPES, permission=ALL_PERMS, expiry=None, start=None) -> str:
    return generate_account_sas(
        server.account, server.key, resource_types=resource_types, permission=permission,
        expiry=expiry or utcnow() + timedelta(hours=1), start=start,
    )


def test_account_sas_create_list_message_delete(server):
    svc = sas_service_client(server, account_sas(server))
    prefix = unique_name("acct")
    names = [f"{prefix}b", f"{prefix}a"]
    for n in names:
        svc.create_queue(n)
    try:
        assert [q.name for q in svc.list_queues(name_starts_with=prefix)] == sorted(names)
        q = svc.get_queue_client(names[0])
        q.set_queue_metadata({"Via": "account-sas"})
        assert q.get_queue_properties().metadata == {"Via": "account-sas"}
        q.send_message("account sas message")
        msg = next(iter(q.receive_messages(visibility_timeout=30)))
        assert msg.content == "account sas message"
        q.delete_message(msg)
        q.send_message("to clear")
        q.clear_messages()
        assert q.peek_messages() == []
        assert svc.get_service_properties()["analytics_logging"].version == "1.0"
    finally:
        for n in names:
            svc.delete_queue(n)
    with pytest.raises(ResourceNotFoundError):
        svc.get_queue_client(names[0]).get_queue_properties()


def test_account_sas_service_only_cannot_create_queue(server):
    svc = sas_service_client(
        server,
        account_sas(server, resource_types=ResourceTypes(service=True), permission=AccountSasPermissions(
            read=True, list=True, create=True, write=True)),
    )
    list(itertools.islice(svc.list_queues(), 5))  # allowed: srt=s, sp=l
    with pytest.raises(HttpResponseError) as exc:
        svc.create_queue(unique_name("denied"))
    assert_forbidden(exc, "AuthorizationResourceTypeMismatch")


def test_account_sas_without_list_permission_cannot_list(server):
    svc = sas_service_client(
        server, account_sas(server, permission=AccountSasPermissions(read=True, create=True))
    )
    with pytest.raises(HttpResponseError) as exc:
        list(itertools.islice(svc.list_queues(), 5))
    assert_forbidden(exc, "AuthorizationPermissionMismatch")


def test_account_sas_cannot_read_acl(server, queue):
    svc = sas_service_client(server, account_sas(server))
    with pytest.raises(HttpResponseError) as exc:
        svc.get_queue_client(queue.queue_name).get_queue_access_policy()
    assert_forbidden(exc, "AuthorizationFailure")


def test_expired_account_sas_is_authentication_failed(server):
    svc = sas_service_client(
        server, account_sas(server, start=utcnow() - timedelta(hours=2), expiry=utcnow() - timedelta(minutes=1))
    )
    with pytest.raises(ClientAuthenticationError) as exc:
        list(itertools.islice(svc.list_queues(), 5))
    assert_forbidden(exc, "AuthenticationFailed")


# ------------------------------------------------------------------ shared key failures


def test_wrong_account_key_is_authentication_failed(server, queue):
    import base64

    wrong_key = base64.b64encode(b"not the right key, not at all!!" * 2).decode()
    bad = QueueClient.from_connection_string(server.connection_string(key=wrong_key), queue.queue_name,
                                             **CLIENT_KWARGS)
    with pytest.raises(ClientAuthenticationError) as exc:
        bad.send_message("rejected")
    assert_forbidden(exc, "AuthenticationFailed")
    bad_service = QueueServiceClient.from_connection_string(server.connection_string(key=wrong_key), **CLIENT_KWARGS)
    with pytest.raises(ClientAuthenticationError) as exc:
        list(itertools.islice(bad_service.list_queues(), 5))
    assert_forbidden(exc, "AuthenticationFailed")
    assert queue.get_queue_properties().approximate_message_count == 0
