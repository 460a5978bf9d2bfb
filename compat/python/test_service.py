"""Account-level operations: service properties, CORS (incl. raw preflight), stats."""

from __future__ import annotations

import pytest
import requests
from azure.storage.queue import (
    CorsRule,
    Metrics,
    QueueAnalyticsLogging,
    QueueServiceClient,
    RetentionPolicy,
)

from conftest import CLIENT_KWARGS


@pytest.fixture
def restore_properties(service):
    """Put the account's service properties back as they were after the test."""
    before = service.get_service_properties()
    yield before
    service.set_service_properties(
        analytics_logging=before["analytics_logging"],
        hour_metrics=before["hour_metrics"],
        minute_metrics=before["minute_metrics"],
        cors=[
            CorsRule(
                r.allowed_origins.split(","),
                r.allowed_methods.split(","),
                allowed_headers=[h for h in r.allowed_headers.split(",") if h],
                exposed_headers=[h for h in r.exposed_headers.split(",") if h],
                max_age_in_seconds=r.max_age_in_seconds,
            )
            for r in before["cors"]
        ],
    )


def _logging_tuple(lg):
    return (lg.version, lg.delete, lg.read, lg.write, lg.retention_policy.enabled, lg.retention_policy.days)


def _metrics_tuple(m):
    return (m.version, m.enabled, m.include_apis, m.retention_policy.enabled, m.retention_policy.days)


def _cors_tuples(rules):
    return [
        (r.allowed_origins, r.allowed_methods, r.allowed_headers, r.exposed_headers, r.max_age_in_seconds)
        for r in rules
    ]


RULE_A = CorsRule(
    ["http://a.example", "http://b.example"],
    ["GET", "PUT"],
    allowed_headers=["x-ms-meta-target*", "x-ms-meta-customheader"],
    exposed_headers=["x-ms-meta-data*", "x-ms-request-id"],
    max_age_in_seconds=500,
)
RULE_B = CorsRule(["*"], ["DELETE", "POST", "OPTIONS", "HEAD", "MERGE"], max_age_in_seconds=0)
RULE_A_T = ("http://a.example,http://b.example", "GET,PUT", "x-ms-meta-target*,x-ms-meta-customheader",
            "x-ms-meta-data*,x-ms-request-id", 500)
RULE_B_T = ("*", "DELETE,POST,OPTIONS,HEAD,MERGE", "", "", 0)


def test_get_service_properties_shape(service):
    props = service.get_service_properties()
    assert set(props) == {"analytics_logging", "hour_metrics", "minute_metrics", "cors"}
    assert props["analytics_logging"].version == "1.0"
    assert props["hour_metrics"].version == "1.0"
    assert props["minute_metrics"].version == "1.0"
    assert isinstance(props["cors"], list)


def test_set_and_get_service_properties(service, restore_properties):
    statuses = []
    service.set_service_properties(
        analytics_logging=QueueAnalyticsLogging(
            read=True, write=False, delete=True, retention_policy=RetentionPolicy(enabled=True, days=5)
        ),
        hour_metrics=Metrics(enabled=True, include_apis=True, retention_policy=RetentionPolicy(enabled=True, days=3)),
        minute_metrics=Metrics(enabled=True, include_apis=False, retention_policy=RetentionPolicy(enabled=False)),
        cors=[RULE_A, RULE_B],
        raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
    )
    assert statuses == [202]
    props = service.get_service_properties()
    assert _logging_tuple(props["analytics_logging"]) == ("1.0", True, True, False, True, 5)
    assert _metrics_tuple(props["hour_metrics"]) == ("1.0", True, True, True, 3)
    assert _metrics_tuple(props["minute_metrics"])[:4] == ("1.0", True, False, False)
    assert _cors_tuples(props["cors"]) == [RULE_A_T, RULE_B_T]

    # Partial update: only minute metrics sent; logging, hour metrics and CORS are kept.
    service.set_service_properties(minute_metrics=Metrics(enabled=False, retention_policy=RetentionPolicy(enabled=False)))
    props = service.get_service_properties()
    assert _logging_tuple(props["analytics_logging"]) == ("1.0", True, True, False, True, 5)
    assert _metrics_tuple(props["hour_metrics"]) == ("1.0", True, True, True, 3)
    assert (props["minute_metrics"].enabled, props["minute_metrics"].retention_policy.enabled) == (False, False)
    assert _cors_tuples(props["cors"]) == [RULE_A_T, RULE_B_T]

    # Partial update: only CORS replaced.
    service.set_service_properties(cors=[RULE_B])
    props = service.get_service_properties()
    assert _cors_tuples(props["cors"]) == [RULE_B_T]
    assert _logging_tuple(props["analytics_logging"]) == ("1.0", True, True, False, True, 5)
    assert _metrics_tuple(props["hour_metrics"]) == ("1.0", True, True, True, 3)

    # cors=[] clears every rule and keeps the rest.
    service.set_service_properties(cors=[])
    props = service.get_service_properties()
    assert props["cors"] == []
    assert _logging_tuple(props["analytics_logging"]) == ("1.0", True, True, False, True, 5)
    assert _metrics_tuple(props["hour_metrics"]) == ("1.0", True, True, True, 3)


def test_more_than_five_cors_rules_is_400(service, restore_properties):
    from azure.core.exceptions import HttpResponseError

    rules = [CorsRule([f"http://h{i}.example"], ["GET"]) for i in range(6)]
    with pytest.raises(HttpResponseError) as exc:
        service.set_service_properties(cors=rules)
    assert exc.value.status_code == 400
    # Nothing was stored.
    assert _cors_tuples(service.get_service_properties()["cors"]) == _cors_tuples(restore_properties["cors"])


def test_get_service_stats_via_secondary(server):
    # azure-storage-queue 12.18.1 treats QueueSecondaryEndpoint=<url> in a connection string as
    # a *hostname* and builds "http://http://..." from it, so a full URL there cannot work. The
    # documented `secondary_hostname` keyword does work, but for path-style URLs the SDK only
    # swaps the netloc and keeps the primary path, so the request goes to
    #   /devstoreaccount1-secondary/devstoreaccount1/?restype=service&comp=stats
    # (signed as such). Azurite routes it on restype=service; the server must too.
    client = QueueServiceClient.from_connection_string(
        server.connection_string(), secondary_hostname=server.secondary_hostname, **CLIENT_KWARGS
    )
    urls = []
    stats = client.get_service_stats(raw_request_hook=lambda req: urls.append(req.http_request.url))
    assert len(urls) == 1 and urls[0].startswith(server.secondary_url + "/"), urls
    assert stats["geo_replication"]["status"] == "live"


# ------------------------------------------------------------------ CORS preflight (raw HTTP)

PREFLIGHT_RULES = [
    CorsRule(
        ["http://allowed.example"],
        ["GET", "PUT"],
        allowed_headers=["x-ms-meta-target*", "x-ms-client-request-id"],
        exposed_headers=["x-ms-request-id"],
        max_age_in_seconds=300,
    )
]


@pytest.fixture
def cors_enabled(service, restore_properties):
    service.set_service_properties(cors=PREFLIGHT_RULES)
    yield


def _preflight(server, path, origin, method, headers=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return requests.options(f"{server.account_url}/{path}", headers=h, timeout=10)


def test_preflight_allowed(server, cors_enabled):
    r = _preflight(server, "anyqueue", "http://allowed.example", "PUT", "x-ms-meta-target1,x-ms-client-request-id")
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
    assert r.headers["Access-Control-Allow-Methods"] == "PUT"
    assert r.headers["Access-Control-Allow-Headers"] == "x-ms-meta-target1,x-ms-client-request-id"
    assert r.headers["Access-Control-Max-Age"] == "300"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.content == b""


def test_preflight_on_account_root_and_messages_path(server, cors_enabled):
    for path in ("", "q-does-not-exist/messages"):
        r = _preflight(server, path, "http://allowed.example", "GET")
        assert r.status_code == 200, path
        assert r.headers["Access-Control-Allow-Origin"] == "http://allowed.example"


def test_preflight_non_matching_origin_is_403(server, cors_enabled):
    r = _preflight(server, "anyqueue", "http://evil.example", "GET")
    assert r.status_code == 403
    assert "Access-Control-Allow-Origin" not in r.headers


def test_preflight_non_matching_method_is_403(server, cors_enabled):
    r = _preflight(server, "anyqueue", "http://allowed.example", "DELETE")
    assert r.status_code == 403


def test_preflight_non_matching_header_is_403(server, cors_enabled):
    r = _preflight(server, "anyqueue", "http://allowed.example", "GET", "x-ms-meta-other")
    assert r.status_code == 403


def test_preflight_without_rules_is_403(server, service, restore_properties):
    service.set_service_properties(cors=[])
    r = _preflight(server, "anyqueue", "http://allowed.example", "GET")
    assert r.status_code == 403


def test_actual_request_with_matching_origin_gets_cors_headers(server, service, cors_enabled):
    captured = {}

    def hook(resp):
        captured.update(resp.http_response.headers)

    service.get_service_properties(headers={"Origin": "http://allowed.example"}, raw_response_hook=hook)
    assert captured["Access-Control-Allow-Origin"] == "http://allowed.example"
    assert captured["Access-Control-Allow-Credentials"] == "true"
    captured.clear()
    service.get_service_properties(headers={"Origin": "http://evil.example"}, raw_response_hook=hook)
    assert "Access-Control-Allow-Origin" not in captured
