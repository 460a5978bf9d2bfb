"""ServiceBusAdministrationClient 7.15 on topics, subscriptions and rules: created, read,
updated, listed and deleted, with Azure's answers, and kept across a restart. Nothing sends
to a topic yet; the last test pins what a sender gets meanwhile."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusError
from azure.servicebus.management import (
    CorrelationRuleFilter,
    SqlRuleAction,
    SqlRuleFilter,
    TrueRuleFilter,
)
from test_admin import TlsServer, name


@pytest.fixture(scope="module")
def tls():
    s = TlsServer()
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


@pytest.fixture
def admin(tls):
    with tls.admin() as a:
        yield a


def test_a_topic_is_created_read_updated_listed_and_deleted(admin):
    t = name("topic")
    made = admin.create_topic(t, max_size_in_megabytes=2048, default_message_time_to_live=timedelta(hours=1))
    assert (made.name, made.max_size_in_megabytes) == (t, 2048)
    got = admin.get_topic(t)
    assert got.default_message_time_to_live == timedelta(hours=1)
    got.max_size_in_megabytes = 4096
    admin.update_topic(got)
    assert admin.get_topic(t).max_size_in_megabytes == 4096
    assert t in [p.name for p in admin.list_topics()]
    rt = admin.get_topic_runtime_properties(t)
    assert (rt.subscription_count, rt.size_in_bytes) == (0, 0)
    admin.delete_topic(t)
    with pytest.raises(ResourceNotFoundError):
        admin.get_topic(t)


def test_subscriptions_start_with_the_default_rule_and_go_with_their_topic(admin):
    t = name("topic")
    admin.create_topic(t)
    s = admin.create_subscription(t, "orders", max_delivery_count=3, lock_duration=timedelta(seconds=30))
    assert (s.name, s.max_delivery_count, s.lock_duration) == ("orders", 3, timedelta(seconds=30))
    admin.create_subscription(t, "audit", dead_lettering_on_message_expiration=True)
    assert [x.name for x in admin.list_subscriptions(t)] == ["audit", "orders"]
    got = admin.get_subscription(t, "orders")
    got.max_delivery_count = 7
    admin.update_subscription(t, got)
    assert admin.get_subscription(t, "orders").max_delivery_count == 7
    rt = admin.get_subscription_runtime_properties(t, "orders")
    assert (rt.total_message_count, rt.active_message_count) == (0, 0)
    assert admin.get_topic_runtime_properties(t).subscription_count == 2
    rules = list(admin.list_rules(t, "orders"))
    assert [r.name for r in rules] == ["$Default"]
    assert isinstance(rules[0].filter, TrueRuleFilter)
    admin.delete_subscription(t, "audit")
    assert [x.name for x in admin.list_subscriptions(t)] == ["orders"]
    admin.delete_topic(t)
    with pytest.raises(ResourceNotFoundError):
        admin.get_subscription(t, "orders")


def test_rules_keep_their_filters_actions_and_typed_values(admin):
    t = name("topic")
    admin.create_topic(t)
    admin.create_subscription(t, "s")
    props = {"count": 3, "ratio": 1.5, "urgent": True, "region": "eu"}
    admin.create_rule(
        t, "s", "by-correlation",
        filter=CorrelationRuleFilter(correlation_id="c-1", label="invoice", properties=props),
    )
    admin.create_rule(
        t, "s", "by-sql",
        filter=SqlRuleFilter("color = @c", parameters={"@c": "red"}),
        action=SqlRuleAction("SET handled = 1"),
    )
    corr = admin.get_rule(t, "s", "by-correlation")
    assert (corr.filter.correlation_id, corr.filter.label) == ("c-1", "invoice")
    assert corr.filter.properties == props
    sql = admin.get_rule(t, "s", "by-sql")
    assert (sql.filter.sql_expression, sql.filter.parameters) == ("color = @c", {"@c": "red"})
    assert sql.action.sql_expression == "SET handled = 1"
    assert sorted(r.name for r in admin.list_rules(t, "s")) == ["$Default", "by-correlation", "by-sql"]
    sql.filter = SqlRuleFilter("color = 'blue'")
    admin.update_rule(t, "s", sql)
    assert admin.get_rule(t, "s", "by-sql").filter.sql_expression == "color = 'blue'"
    admin.delete_rule(t, "s", "$Default")
    with pytest.raises(ResourceNotFoundError):
        admin.get_rule(t, "s", "$Default")
    with pytest.raises(ResourceExistsError):
        admin.create_rule(t, "s", "by-sql")


def test_azures_answers_for_taken_missing_and_invalid_names(admin):
    q = name("shared")
    admin.create_queue(q)
    # Queues and topics share one namespace of names.
    with pytest.raises(ResourceExistsError):
        admin.create_topic(q)
    t = name("topic")
    admin.create_topic(t)
    with pytest.raises(ResourceExistsError):
        admin.create_queue(t)
    with pytest.raises(ResourceNotFoundError):
        admin.create_subscription(name("missing"), "s")
    with pytest.raises(ResourceNotFoundError):
        admin.get_subscription(t, "missing")
    with pytest.raises(ResourceNotFoundError):
        admin.create_rule(t, "missing", "r")
    admin.create_subscription(t, "s")
    with pytest.raises(ResourceExistsError):
        admin.create_subscription(t, "S")
    for bad in ("a/b", "-x"):
        with pytest.raises(HttpResponseError) as e:
            admin.create_subscription(t, bad)
        assert e.value.status_code in (400, 404)
    with pytest.raises(HttpResponseError) as e:
        admin.create_subscription(t, "short-lock", lock_duration=timedelta(seconds=1))
    assert e.value.status_code == 400


def test_topics_subscriptions_and_rules_survive_a_restart(tls, admin):
    t = name("durable")
    admin.create_topic(t, max_size_in_megabytes=3072)
    admin.create_subscription(t, "s", max_delivery_count=4)
    admin.create_rule(t, "s", "r", filter=CorrelationRuleFilter(properties={"n": 7}))
    tls.stop()
    tls.start()
    with tls.admin() as a:
        assert a.get_topic(t).max_size_in_megabytes == 3072
        assert a.get_subscription(t, "s").max_delivery_count == 4
        assert a.get_rule(t, "s", "r").filter.properties == {"n": 7}
        assert sorted(r.name for r in a.list_rules(t, "s")) == ["$Default", "r"]


def test_sending_to_a_topic_is_refused_until_topics_are_served(tls, admin):
    t = name("topic")
    admin.create_topic(t)
    with tls.client() as c:
        with pytest.raises(ServiceBusError) as e:
            with c.get_topic_sender(t) as s:
                s.send_messages(ServiceBusMessage("not yet"))
    assert "amqp:not-implemented" in str(e.value)
