"""The same protocol through azure.storage.queue.aio (aiohttp transport)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.queue import AccessPolicy, QueueSasPermissions, generate_queue_sas
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from conftest import CLIENT_KWARGS, unique_name

pytestmark = pytest.mark.asyncio

MIXED = {"Color": "red", "camelCase": "x", "UPPER": "y"}


def aio_service(server) -> QueueServiceClient:
    return QueueServiceClient.from_connection_string(server.connection_string(), **CLIENT_KWARGS)


def aio_queue(server, name: str, **kwargs) -> QueueClient:
    return QueueClient.from_connection_string(server.connection_string(), name, **CLIENT_KWARGS, **kwargs)


async def collect(aiter, limit=100):
    out = []
    async for item in aiter:
        out.append(item)
        if len(out) >= limit:
            break
    return out


async def test_aio_client_really_uses_aiohttp(server):
    async with aio_queue(server, unique_name()) as q:
        assert isinstance(q._pipeline._transport, AioHttpTransport)


async def test_aio_create_semantics(server):
    statuses = []

    def hook(r):
        statuses.append(r.http_response.status_code)

    async with aio_queue(server, unique_name("aio")) as q:
        await q.create_queue(metadata={"a": "1"}, raw_response_hook=hook)
        try:
            with pytest.raises(ResourceExistsError):
                await q.create_queue(metadata={"a": "1"}, raw_response_hook=hook)
            with pytest.raises(ResourceExistsError) as exc:
                await q.create_queue(metadata={"a": "2"}, raw_response_hook=hook)
            assert exc.value.error_code == "QueueAlreadyExists"
            assert statuses == [201, 204, 409]
        finally:
            await q.delete_queue()
        with pytest.raises(ResourceNotFoundError) as exc:
            await q.get_queue_properties()
        assert exc.value.error_code == "QueueNotFound"


async def test_aio_metadata_and_properties(server):
    async with aio_queue(server, unique_name("aio")) as q:
        await q.create_queue(metadata=MIXED)
        try:
            props = await q.get_queue_properties()
            assert props.metadata == MIXED
            assert props.approximate_message_count == 0
            await q.set_queue_metadata({"Other": "v"})
            await q.send_message("one")
            await q.send_message("two", visibility_timeout=60)
            props = await q.get_queue_properties()
            assert props.metadata == {"Other": "v"}
            assert props.approximate_message_count == 2
        finally:
            await q.delete_queue()


async def test_aio_message_lifecycle(server):
    async with aio_queue(server, unique_name("aio")) as q:
        await q.create_queue()
        try:
            sent = await q.send_message("hello <aio> & 😀", time_to_live=-1)
            assert sent.expires_on == datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
            peeked = await q.peek_messages(max_messages=32)
            assert [(m.content, m.dequeue_count, m.pop_receipt) for m in peeked] == [("hello <aio> & 😀", 0, None)]
            [msg] = await collect(q.receive_messages(max_messages=1, visibility_timeout=30), 2)
            assert (msg.id, msg.content, msg.dequeue_count) == (sent.id, "hello <aio> & 😀", 1)
            assert await q.peek_messages() == []
            updated = await q.update_message(msg, pop_receipt=msg.pop_receipt, content="changed", visibility_timeout=0)
            assert updated.pop_receipt != msg.pop_receipt
            [peeked] = await q.peek_messages()
            assert (peeked.content, peeked.dequeue_count) == ("changed", 1)
            with pytest.raises(ResourceNotFoundError) as exc:
                await q.delete_message(msg.id, msg.pop_receipt)
            assert exc.value.status_code == 404
            assert exc.value.error_code == "MessageNotFound"
            await q.delete_message(msg.id, updated.pop_receipt)
            assert await q.peek_messages() == []
        finally:
            await q.delete_queue()


async def test_aio_batch_receive_and_clear(server):
    async with aio_queue(server, unique_name("aio")) as q:
        await q.create_queue()
        try:
            await asyncio.gather(*(q.send_message(f"b{i:02d}") for i in range(35)))
            assert (await q.get_queue_properties()).approximate_message_count == 35
            pages = q.receive_messages(messages_per_page=32, visibility_timeout=60).by_page()
            first = [m async for m in await pages.__anext__()]
            assert len(first) == 32
            rest = await collect(q.receive_messages(messages_per_page=32, visibility_timeout=60))
            assert sorted(m.content for m in first + rest) == [f"b{i:02d}" for i in range(35)]
            await q.send_message("visible")
            await q.clear_messages()
            assert (await q.get_queue_properties()).approximate_message_count == 0
        finally:
            await q.delete_queue()


async def test_aio_message_size_limit(server):
    async with aio_queue(server, unique_name("aio")) as q:
        await q.create_queue()
        try:
            await q.send_message("z" * 65536)
            with pytest.raises(HttpResponseError) as exc:
                await q.send_message("z" * 65537)
            assert exc.value.status_code == 413
            assert exc.value.error_code == "RequestBodyTooLarge"
        finally:
            await q.delete_queue()


async def test_aio_list_queues_paging(server):
    prefix = unique_name("aiol")
    names = [f"{prefix}{s}" for s in ("d", "b", "a", "e", "c")]
    async with aio_service(server) as svc:
        for n in names:
            await svc.create_queue(n, metadata={"Name": n[-1].upper()})
        try:
            pages = []
            async for page in svc.list_queues(name_starts_with=prefix, results_per_page=2, include_metadata=True).by_page():
                pages.append([(q.name, q.metadata) for q in [x async for x in page]])
                if len(pages) > 6:
                    break
            assert pages == [
                [(f"{prefix}a", {"Name": "A"}), (f"{prefix}b", {"Name": "B"})],
                [(f"{prefix}c", {"Name": "C"}), (f"{prefix}d", {"Name": "D"})],
                [(f"{prefix}e", {"Name": "E"})],
            ]
        finally:
            for n in names:
                await svc.delete_queue(n)


async def test_aio_service_properties_and_stats(server):
    async with QueueServiceClient.from_connection_string(
        server.connection_string(), secondary_hostname=server.secondary_hostname, **CLIENT_KWARGS
    ) as svc:
        props = await svc.get_service_properties()
        assert set(props) == {"analytics_logging", "hour_metrics", "minute_metrics", "cors"}
        assert props["hour_metrics"].version == "1.0"
        stats = await svc.get_service_stats()
        assert stats["geo_replication"]["status"] == "live"


async def test_aio_acl_and_sas(server):
    name = unique_name("aio")
    async with aio_queue(server, name) as q:
        await q.create_queue()
        try:
            now = datetime.now(timezone.utc).replace(microsecond=0)
            await q.set_queue_access_policy(
                {"policy1": AccessPolicy(permission=QueueSasPermissions(read=True, add=True, process=True),
                                         expiry=now + timedelta(hours=1))}
            )
            acl = await q.get_queue_access_policy()
            assert list(acl) == ["policy1"]
            assert acl["policy1"].permission == "rap"

            policy_sas = generate_queue_sas(server.account, name, server.key, policy_id="policy1")
            async with QueueClient(server.account_url, name, credential=policy_sas, **CLIENT_KWARGS) as sq:
                await sq.send_message("policy sas")
                [m] = await collect(sq.receive_messages(max_messages=1, visibility_timeout=30), 2)
                assert m.content == "policy sas"
                await sq.delete_message(m)

            ro = generate_queue_sas(server.account, name, server.key, permission=QueueSasPermissions(read=True),
                                    expiry=now + timedelta(hours=1))
            async with QueueClient(server.account_url, name, credential=ro, **CLIENT_KWARGS) as rq:
                with pytest.raises(HttpResponseError) as exc:
                    await rq.send_message("denied")
                assert exc.value.status_code == 403
                assert exc.value.error_code == "AuthorizationPermissionMismatch"

            expired = generate_queue_sas(server.account, name, server.key,
                                         permission=QueueSasPermissions(read=True),
                                         start=now - timedelta(hours=2), expiry=now - timedelta(minutes=1))
            async with QueueClient(server.account_url, name, credential=expired, **CLIENT_KWARGS) as eq:
                with pytest.raises(ClientAuthenticationError) as exc:
                    await eq.peek_messages()
                assert exc.value.status_code == 403
                assert exc.value.error_code == "AuthenticationFailed"
        finally:
            await q.delete_queue()
