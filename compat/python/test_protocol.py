"""Response headers every SDK relies on (digest 2.2), checked on success and error responses."""

from __future__ import annotations

import uuid
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import pytest
from azure.core.exceptions import ResourceNotFoundError

from conftest import unique_name


class Capture:
    def __init__(self):
        self.requests = []
        self.responses = []

    def on_request(self, req):
        self.requests.append(req.http_request.headers)

    def on_response(self, resp):
        self.responses.append(resp.http_response)

    def kwargs(self, client_request_id=None):
        kw = {"raw_request_hook": self.on_request, "raw_response_hook": self.on_response}
        if client_request_id:
            kw["client_request_id"] = client_request_id
        return kw


def assert_common_headers(request_headers, response):
    headers = response.headers
    assert headers.get("x-ms-request-id"), "x-ms-request-id missing"
    date = parsedate_to_datetime(headers["Date"])
    assert abs((date - datetime.now(timezone.utc)).total_seconds()) < 10
    assert headers["Date"].endswith(" GMT")
    assert headers["x-ms-client-request-id"] == request_headers["x-ms-client-request-id"]
    # The version the request ran with: the request's own x-ms-version, echoed (checked last).
    assert headers["x-ms-version"] == request_headers["x-ms-version"]


def test_success_response_headers(queue):
    cap = Capture()
    rid = f"compat-{uuid.uuid4()}"
    queue.get_queue_properties(**cap.kwargs(rid))
    assert cap.requests[0]["x-ms-client-request-id"] == rid
    assert_common_headers(cap.requests[0], cap.responses[0])


def test_xml_responses_are_application_xml(service, queue):
    queue.send_message("x")
    cap = Capture()
    queue.peek_messages(**cap.kwargs())
    list(service.list_queues(name_starts_with=queue.queue_name, **cap.kwargs()))
    service.get_service_properties(**cap.kwargs())
    queue.get_queue_access_policy(**cap.kwargs())
    assert len(cap.responses) == 4
    for req, resp in zip(cap.requests, cap.responses):
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/xml"
        assert_common_headers(req, resp)


def test_error_response_headers(make_queue_client):
    client = make_queue_client(unique_name("missing"))
    cap = Capture()
    with pytest.raises(ResourceNotFoundError):
        client.get_queue_properties(**cap.kwargs())
    with pytest.raises(ResourceNotFoundError):
        client.send_message("x", **cap.kwargs())
    for resp in cap.responses:
        assert resp.status_code == 404
        assert resp.headers["x-ms-error-code"] == "QueueNotFound"
        assert resp.headers["Content-Type"] == "application/xml"
        body = resp.text()
        assert "<Code>QueueNotFound</Code>" in body
        assert f"RequestId:{resp.headers['x-ms-request-id']}" in body
    for req, resp in zip(cap.requests, cap.responses):
        assert_common_headers(req, resp)
