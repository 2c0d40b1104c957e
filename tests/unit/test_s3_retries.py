"""S3Storage's own retry policy (which failures are tried again, how long it waits, how
a retried conditional create tells its own object from another's), on a scripted
client. The same storage against the real gateway: tests/s3/."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from dedupe.storage.base import ObjectExists, ObjectNotFound, StorageError
from dedupe.storage.s3 import DEFAULT_ATTEMPTS, S3AccessDenied, S3Storage, backoff, parse_location

ENDPOINT = "http://127.0.0.1:1"


def client_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "scripted"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


class ScriptedS3:
    """Answers each call with the next step of its script: an exception to raise, or
    the bytes of an object."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.calls: list[str] = []
        self.meta = SimpleNamespace(events=SimpleNamespace(register=lambda *a, **k: None))

    def _next(self, op: str) -> Any:
        self.calls.append(op)
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def get_object(self, **kw: Any) -> dict[str, Any]:
        step = self._next("get")
        length = len(step) if isinstance(step, bytes) else step[1]
        body = step if isinstance(step, bytes) else step[0]
        return {"Body": io.BytesIO(body), "ContentLength": length}

    def put_object(self, **kw: Any) -> dict[str, Any]:
        self._next("put")
        return {}


def storage(client: ScriptedS3, attempts: int = DEFAULT_ATTEMPTS) -> tuple[S3Storage, list[float]]:
    s = S3Storage(parse_location("s3://b/p"), endpoint=ENDPOINT, max_attempts=attempts, client=client)
    waits: list[float] = []
    s.sleep = waits.append
    return s, waits


def refused() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url=ENDPOINT)


def test_refused_connections_are_retried_with_growing_jittered_waits() -> None:
    s, waits = storage(ScriptedS3(refused(), refused(), refused(), b"data"))
    assert s.get("index/a") == b"data"
    assert len(waits) == 3
    for attempt, wait in enumerate(waits, start=1):
        assert backoff(attempt) / 2 <= wait < backoff(attempt)
    assert backoff(1) < backoff(2) < backoff(3)


def test_the_default_bound_outlasts_a_gateway_restart() -> None:
    """8 attempts wait at least 15 s in all (the shortest jitter every time): a gateway
    that takes a few seconds to come back is waited for, whatever botocore's schedule."""
    s, waits = storage(ScriptedS3(*[refused()] * DEFAULT_ATTEMPTS))
    with pytest.raises(StorageError) as e:
        s.get("index/a")
    assert str(e.value) == f"s3://b/p/index/a: cannot read: {ENDPOINT} does not answer (gave up after 8 attempts)"
    assert len(waits) == DEFAULT_ATTEMPTS - 1
    assert sum(backoff(a) for a in range(1, DEFAULT_ATTEMPTS)) / 2 >= 15
    assert all(w <= 16 for w in waits)


@pytest.mark.parametrize("status,code", [(503, "SlowDown"), (500, "InternalError"), (429, "TooManyRequests"),
                                         (400, "RequestTimeout"), (502, "")])
def test_server_failures_and_throttling_are_retried(status: int, code: str) -> None:
    client = ScriptedS3(client_error(status, code), b"x")
    s, waits = storage(client)
    assert s.get("index/a") == b"x"
    assert client.calls == ["get", "get"] and len(waits) == 1


def test_a_server_failure_that_stays_names_the_attempts() -> None:
    client = ScriptedS3(*[client_error(503, "SlowDown")] * 3)
    s, _ = storage(client, attempts=3)
    with pytest.raises(StorageError) as e:
        s.get("index/a")
    assert "cannot read (SlowDown: scripted after 3 attempts)" in str(e.value)
    assert len(client.calls) == 3


@pytest.mark.parametrize("status,code,error", [(403, "AccessDenied", S3AccessDenied),
                                               (404, "NoSuchKey", ObjectNotFound),
                                               (400, "InvalidArgument", StorageError)])
def test_answers_that_will_not_change_are_not_retried(status: int, code: str, error: type[Exception]) -> None:
    client = ScriptedS3(client_error(status, code), b"never read")
    s, waits = storage(client)
    with pytest.raises(error):
        s.get("index/a")
    assert client.calls == ["get"] and waits == []


def test_a_body_cut_short_is_read_again() -> None:
    s, waits = storage(ScriptedS3((b"da", 4), b"data"))
    assert s.get("index/a") == b"data" and len(waits) == 1


def test_a_retried_create_that_meets_its_own_object_succeeds() -> None:
    """The first PUT went through but its answer was lost; the retry meets 412, reads
    the object, and finds its own bytes."""
    client = ScriptedS3(ConnectionClosedError(endpoint_url=ENDPOINT), client_error(412, "PreconditionFailed"),
                        b"lock-1")
    s, _ = storage(client)
    s.create("locks/x", b"lock-1")
    assert client.calls == ["put", "put", "get"]


def test_a_retried_create_that_meets_another_object_fails() -> None:
    client = ScriptedS3(ConnectionClosedError(endpoint_url=ENDPOINT), client_error(412, "PreconditionFailed"),
                        b"lock-2")
    s, _ = storage(client)
    with pytest.raises(ObjectExists):
        s.create("locks/x", b"lock-1")


def test_a_first_create_that_meets_an_object_does_not_read_it() -> None:
    client = ScriptedS3(client_error(412, "PreconditionFailed"))
    s, _ = storage(client)
    with pytest.raises(ObjectExists):
        s.create("locks/x", b"lock-1")
    assert client.calls == ["put"]
