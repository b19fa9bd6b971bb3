"""The contract pieces of feature flags: the `flags` channel, its schema, the admin command."""

import pytest

from tickmesh.contracts.channels import (
    Channel,
    ChannelError,
    Kind,
    channel_for_subject,
    flags_subject,
    is_state_subject,
    parse_channel,
    subject_for,
)
from tickmesh.contracts.commands import commands
from tickmesh.contracts.messages import ContractError, schema


def test_flags_is_a_state_channel_of_the_callers_own():
    ch = parse_channel("flags")
    assert ch == Channel(Kind.FLAGS)
    assert Kind.FLAGS.conflates and not Kind.FLAGS.per_user
    subject = subject_for(ch, user_id="alice@example.com")
    assert subject == flags_subject("alice@example.com") == "tm.flags.eval.alice_40example_2Ecom"
    assert is_state_subject(subject)
    assert channel_for_subject(subject) == ch
    with pytest.raises(ValueError):
        subject_for(ch)


@pytest.mark.parametrize("name", ["flags:bob", "flags:", "flags:*", "Flags"])
def test_flags_never_names_another_user(name):
    with pytest.raises(ChannelError):
        parse_channel(name)


def test_flags_message_validates_values_of_every_type():
    msg = {
        "flags": {
            "ws.msgpack": {"value": True, "variant": "on", "reason": "split"},
            "theme": {"value": "dark", "variant": "rule", "reason": "targeting_match"},
            "limit": {"value": 2.5, "variant": "default", "reason": "default"},
            "layout": {"value": {"cols": [1, 2]}, "variant": "rollout", "reason": "split"},
        },
        "revision": 7,
        "ts": 1795630850562443,
    }
    assert schema("flags").validate(msg) == msg


@pytest.mark.parametrize(
    "flags, field",
    [
        ({"Bad Name": {"value": True, "variant": "on", "reason": "default"}}, "flags"),
        ({"x": {"value": None, "variant": "on", "reason": "default"}}, "flags"),
        ({"x": {"value": "y" * 5000, "variant": "on", "reason": "default"}}, "flags"),
        ({"x": {"value": True, "variant": "on", "reason": "because"}}, "flags"),
        ({"x": {"value": True, "variant": "on", "reason": "default", "rules": []}}, "flags"),
    ],
)
def test_flags_message_refuses_what_a_client_must_not_get(flags, field):
    with pytest.raises(ContractError) as info:
        schema("flags").validate({"flags": flags, "revision": 1, "ts": 1795630850562443})
    assert info.value.field == field


def test_flag_admin_commands_are_admin_only():
    for name in ("flag.list", "flag.update"):
        assert commands()[name].roles == frozenset({"admin"})
        assert commands()[name].service == "flags"
    change = schema("flag_change").validate({"name": "ws.msgpack", "action": "rollout", "percent": "10"})
    assert change["percent"] == "10"
    with pytest.raises(ContractError):
        schema("flag_change").validate({"name": "x", "action": "explode"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "1"])
def test_number_fields_refuse_non_numbers(value):
    from tickmesh.contracts.messages import Field, _check

    with pytest.raises(ContractError):
        _check("m", Field(name="n", type="number", required=True, doc=""), value)
