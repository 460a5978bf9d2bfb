"""azure-storage-queue over HTTPS: Shared Key, SAS and a token credential against the real
binary, with a certificate from ``hematite dev-cert`` that the client verifies, and tokens the
test mints as Entra ID would (RS256, v1 issuer, storage audience) signed by a key the server
trusts through ``--oauth-keys``. Also user delegation keys and SAS, sync and asyncio."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import hematite_server  # noqa: E402

from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError  # noqa: E402
from azure.storage.queue import (  # noqa: E402
    AccountSasPermissions,
    QueueClient,
    QueueSasPermissions,
    QueueServiceClient,
    ResourceTypes,
    generate_account_sas,
    generate_queue_sas,
)
from azure.storage.queue.aio import QueueServiceClient as AioQueueServiceClient  # noqa: E402

from conftest import CLIENT_KWARGS, unique_name  # noqa: E402

TENANT = "dd0d0df1-06c3-436c-8034-4b9a153097ce"
OID = "23657296-5cd5-45b0-a809-d972a7f4dfe1"

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HEMATITE_URL")), reason="starts its own HTTPS server"
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


class Idp:
    """A stand-in for Entra ID: an RSA key, its JWKS, and tokens it signs."""

    def __init__(self, kid: str = "k1"):
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> str:
        pub = self.key.public_key().public_numbers()
        return json.dumps(
            {
                "keys": [
                    {
                        "kty": "RSA",
                        "use": "sig",
                        "alg": "RS256",
                        "kid": self.kid,
                        "n": b64url(int_bytes(pub.n)),
                        "e": b64url(int_bytes(pub.e)),
                    }
                ]
            }
        )

    def mint(self, **claims) -> str:
        now = int(time.time())
        body = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{TENANT}/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": OID,
            "tid": TENANT,
            "scp": "user_impersonation",
        }
        body.update(claims)
        head = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(body).encode())}"
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(sig)}"


class TokenCredential:
    """The smallest token credential: always the same token."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class AsyncTokenCredential(TokenCredential):
    async def get_token(self, *scopes, **kwargs) -> AccessToken:  # type: ignore[override]
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    certs = hematite_server.dev_cert(str(d))
    idp = Idp()
    jwks = d / "jwks.json"
    jwks.write_text(idp.jwks())
    srv = hematite_server.start(
        extra_args=["--tls-cert", certs["cert"], "--tls-key", certs["key"], "--oauth-keys", str(jwks)],
        https=True,
    )
    yield srv, certs["ca"], idp
    err = hematite_server.stop(srv)
    if err:
        raise RuntimeError(err)


def token_service(https, token: str | None = None) -> QueueServiceClient:
    srv, ca, idp = https
    cred = TokenCredential(token or idp.mint())
    return QueueServiceClient(srv.account_url, credential=cred, connection_verify=ca, **CLIENT_KWARGS)


def test_every_operation_with_a_token_credential(https):
    service = token_service(https)
    name = unique_name("tok")
    q = service.create_queue(name, metadata={"Owner": "token"})
    try:
        assert q.get_queue_properties().metadata == {"Owner": "token"}
        q.set_queue_metadata({"Stage": "two"})
        sent = q.send_message("over tls")
        assert [m.content for m in q.peek_messages()] == ["over tls"]
        got = q.receive_message(visibility_timeout=30)
        assert got is not None and got.id == sent.id
        updated = q.update_message(got, pop_receipt=got.pop_receipt, visibility_timeout=0, content="edited")
        again = q.receive_message()
        assert again.content == "edited"
        q.delete_message(again.id, again.pop_receipt)
        q.send_message("to clear")
        q.clear_messages()
        assert q.get_queue_properties().approximate_message_count == 0
        assert name in [x.name for x in service.list_queues(name_starts_with=name)]
        props = service.get_service_properties()
        service.set_service_properties(cors=[], hour_metrics=props["hour_metrics"])
        assert updated.pop_receipt
        # The ACL needs the account key, as in Azurite.
        with pytest.raises(HttpResponseError) as exc:
            q.get_queue_access_policy()
        assert exc.value.status_code == 403
    finally:
        q.delete_queue()


def test_shared_key_and_an_https_only_sas_over_https(https):
    srv, ca, _ = https
    service = QueueServiceClient.from_connection_string(
        srv.connection_string(), connection_verify=ca, **CLIENT_KWARGS
    )
    name = unique_name("sk")
    q = service.create_queue(name)
    try:
        sas = generate_account_sas(
            srv.account,
            srv.key,
            ResourceTypes(object=True),
            AccountSasPermissions(add=True, process=True),
            expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
            protocol="https",
        )
        client = QueueClient(srv.account_url, name, credential=sas, connection_verify=ca, **CLIENT_KWARGS)
        client.send_message("sas over https")
        assert client.receive_message().content == "sas over https"
    finally:
        q.delete_queue()


def test_an_untrusted_certificate_is_refused_by_the_client(https):
    srv, _, _ = https
    service = QueueServiceClient.from_connection_string(srv.connection_string(), **CLIENT_KWARGS)
    with pytest.raises(Exception) as exc:
        service.get_service_properties()
    assert "certificate" in str(exc.value).lower() or "ssl" in str(exc.value).lower()


@pytest.mark.parametrize(
    "claims, detail",
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "Lifetime validation failed."),
        ({"aud": "https://otheraccount.queue.core.windows.net"}, "audience"),
        ({"iss": "https://evil.example/tenant/"}, "issuer"),
    ],
)
def test_bad_tokens_get_401_invalid_authentication_info(https, claims, detail):
    _, _, idp = https
    service = token_service(https, idp.mint(**claims))
    with pytest.raises(ClientAuthenticationError) as exc:
        service.create_queue(unique_name("bad"))
    assert exc.value.status_code == 401
    assert exc.value.error_code == "InvalidAuthenticationInfo"
    assert detail in str(exc.value)


def test_a_token_signed_by_another_key_is_refused(https):
    service = token_service(https, Idp().mint())
    with pytest.raises(ClientAuthenticationError) as exc:
        service.list_queues().next()
    assert exc.value.status_code == 401
    assert "Signature validation failed." in str(exc.value)


def test_user_delegation_key_and_sas(https):
    srv, ca, _ = https
    service = token_service(https)
    name = unique_name("ud")
    service.create_queue(name)
    try:
        now = dt.datetime.now(dt.timezone.utc)
        key = service.get_user_delegation_key(
            start=now - dt.timedelta(minutes=5), expiry=now + dt.timedelta(hours=1)
        )
        assert (key.signed_oid, key.signed_tid, key.signed_service) == (OID, TENANT, "q")
        sas = generate_queue_sas(
            srv.account,
            name,
            user_delegation_key=key,
            permission=QueueSasPermissions(read=True, add=True, process=True),
            expiry=now + dt.timedelta(minutes=30),
        )
        client = QueueClient(srv.account_url, name, credential=sas, connection_verify=ca, **CLIENT_KWARGS)
        client.send_message("delegated")
        got = client.receive_message()
        assert got.content == "delegated"
        client.delete_message(got)
        # A SAS without `u` cannot update; one signed with a made-up key does not verify.
        with pytest.raises(HttpResponseError) as exc:
            client.send_message("x")
            m = client.receive_message()
            client.update_message(m, content="y")
        assert exc.value.status_code == 403
        key.value = base64.b64encode(b"\0" * 32).decode()
        forged = generate_queue_sas(
            srv.account, name, user_delegation_key=key, permission=QueueSasPermissions(read=True),
            expiry=now + dt.timedelta(minutes=30),
        )
        bad = QueueClient(srv.account_url, name, credential=forged, connection_verify=ca, **CLIENT_KWARGS)
        with pytest.raises(ClientAuthenticationError) as exc:
            bad.peek_messages()
        assert exc.value.error_code == "AuthenticationFailed"
        # A delegation key lives at most seven days.
        with pytest.raises(HttpResponseError) as exc:
            service.get_user_delegation_key(start=now, expiry=now + dt.timedelta(days=8))
        assert exc.value.status_code == 400
    finally:
        service.delete_queue(name)


@pytest.mark.asyncio
async def test_asyncio_client_with_a_token_credential(https):
    srv, ca, idp = https
    async with AioQueueServiceClient(
        srv.account_url, credential=AsyncTokenCredential(idp.mint()), connection_verify=ca, **CLIENT_KWARGS
    ) as service:
        name = unique_name("aio")
        q = await service.create_queue(name)
        await q.send_message("async over tls")
        got = await q.receive_message()
        assert got.content == "async over tls"
        await q.delete_message(got)
        await q.delete_queue()

