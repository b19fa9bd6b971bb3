"""The SDK's pieces that need no NATS: versions, credentials, limits, error codes."""

from __future__ import annotations

import pytest

from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import ContractError
from tickmesh.publish import (
    Credentials,
    InvalidMessage,
    PublishDenied,
    PublishError,
    PublishTimeout,
    Versions,
    stable_id,
)
from tickmesh.publish.delivery import Delivery


def test_versions_increase_strictly_even_when_the_clock_stalls():
    v = Versions()
    assert [v.next("a", 100), v.next("a", 100), v.next("a", 50), v.next("b", 7)] == [100, 101, 102, 7]


def test_stable_ids_name_the_same_cause_the_same_way():
    assert stable_id("n", "x1") == stable_id("n", "x1") != stable_id("n", "x2")
    assert stable_id("n", "a", "bc") != stable_id("n", "ab", "c")


def test_credentials_take_every_documented_form_and_never_show_a_secret():
    assert Credentials.of(None).options() == {}
    assert Credentials.of("/run/secrets/risk.creds").options() == {"user_credentials": "/run/secrets/risk.creds"}
    c = Credentials.of({"user": "risk", "password": "s3cret"})
    assert c.options() == {"user": "risk", "password": "s3cret"}
    assert "s3cret" not in repr(c) and "s3cret" not in repr(Credentials(token="s3cret"))
    with pytest.raises(ValueError, match="passwd"):
        Credentials.of({"user": "risk", "passwd": "x"})


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Delivery(None, max_pending=0, max_pending_bytes=1, ack_timeout=1, deliver_timeout=1)


def test_errors_carry_stable_codes_and_say_whether_the_message_may_be_stored():
    invalid = InvalidMessage.of(ContractError("notification", "title", "too long"))
    assert isinstance(invalid, PublishError) and isinstance(invalid, ContractError) and isinstance(invalid, ValueError)
    assert invalid.code == ErrorCode.INVALID_FIELD and invalid.field == "title" and invalid.stored is False
    assert str(invalid) == "notification.title: too long"
    assert PublishDenied("x").code == ErrorCode.FORBIDDEN
    assert PublishTimeout("x").stored is None
