"""azure-servicebus's asyncio client against Hematite: it runs pyamqp's async transport, a
separate code path from the sync one (its own connection loop, keep-alive and link handling)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import ServiceBusAuthenticationError

from conftest import take

pytestmark = pytest.mark.asyncio


async def receive(receiver, n, wait=5):
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while len(got) < n and loop.time() < deadline:
        got += await receiver.receive_messages(
            max_message_count=n - len(got), max_wait_time=max(0.5, deadline - loop.time())
        )
    return got


async def test_tutorial_flow(conn_str):
    queue = take()
    async with ServiceBusClient.from_connection_string(conn_str) as client:
        async with client.get_queue_sender(queue) as sender:
            await sender.send_messages(ServiceBusMessage("Test Message"))
        async with client.get_queue_receiver(queue) as receiver:
            [m] = await receive(receiver, 1)
            assert str(m) == "Test Message" and m.delivery_count == 0
            await receiver.abandon_message(m)
            [again] = await receive(receiver, 1)
            assert again.message_id == m.message_id and again.delivery_count == 1
            await receiver.complete_message(again)
            assert await receiver.receive_messages(max_message_count=1, max_wait_time=1) == []


async def test_batch_and_receive_and_delete(conn_str):
    queue = take()
    async with ServiceBusClient.from_connection_string(conn_str) as client:
        async with client.get_queue_sender(queue) as sender:
            batch = await sender.create_message_batch()
            for i in range(1000):
                batch.add_message(ServiceBusMessage(f"{i:04}"))
            await sender.send_messages(batch)
        async with client.get_queue_receiver(
            queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, prefetch_count=100
        ) as receiver:
            got = await receive(receiver, 1000, wait=30)
    assert [str(m) for m in got] == [f"{i:04}" for i in range(1000)]


async def test_concurrent_receivers_share_the_work(conn_str):
    queue = take()
    n = 100
    async with ServiceBusClient.from_connection_string(conn_str) as client:
        async with client.get_queue_sender(queue) as sender:
            await sender.send_messages([ServiceBusMessage(str(i)) for i in range(n)])

        async def work():
            seen = []
            async with client.get_queue_receiver(queue) as receiver:
                idle = 0
                while idle < 2:
                    batch = await receiver.receive_messages(max_message_count=10, max_wait_time=1)
                    idle = 0 if batch else idle + 1
                    for m in batch:
                        seen.append(str(m))
                        await receiver.complete_message(m)
            return seen

        a, b = await asyncio.gather(work(), work())
    assert sorted(a + b, key=int) == [str(i) for i in range(n)]
    assert not set(a) & set(b)


async def test_dead_letter_and_defer(conn_str):
    queue = take()
    async with ServiceBusClient.from_connection_string(conn_str) as client:
        async with client.get_queue_sender(queue) as sender:
            await sender.send_messages([ServiceBusMessage("dead"), ServiceBusMessage("later")])
        async with client.get_queue_receiver(queue) as receiver:
            dead, later = sorted(await receive(receiver, 2), key=lambda m: m.sequence_number)
            await receiver.dead_letter_message(dead, reason="r", error_description="d")
            await receiver.defer_message(later)
            [d] = await receiver.receive_deferred_messages([later.sequence_number])
            await receiver.complete_message(d)
        async with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [m] = await receive(dlq, 1)
            assert (str(m), m.dead_letter_reason, m.dead_letter_error_description) == ("dead", "r", "d")
            await dlq.complete_message(m)


async def test_scheduled_and_renew(conn_str):
    queue = take("short_lock")
    async with ServiceBusClient.from_connection_string(conn_str) as client:
        async with client.get_queue_sender(queue) as sender:
            from datetime import datetime, timezone

            await sender.schedule_messages(
                ServiceBusMessage("soon", time_to_live=timedelta(minutes=1)),
                datetime.now(timezone.utc) + timedelta(seconds=1),
            )
        async with client.get_queue_receiver(queue) as receiver:
            [m] = await receive(receiver, 1, wait=6)
            before = m.locked_until_utc
            await asyncio.sleep(2)
            assert await receiver.renew_message_lock(m) > before
            await receiver.complete_message(m)


async def test_a_wrong_key_is_refused(server):
    async with ServiceBusClient.from_connection_string(
        server.sb_connection_string(key="wrong"), retry_total=0
    ) as client:
        with pytest.raises(ServiceBusAuthenticationError):
            async with client.get_queue_sender(take()) as sender:
                await sender.send_messages(ServiceBusMessage("no"))
