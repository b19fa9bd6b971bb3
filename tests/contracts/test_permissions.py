"""permissions.toml resolves to concrete subjects, and only the admin holds the dangerous ones."""

from __future__ import annotations

import pytest

from tickmesh.contracts import permissions as p
from tickmesh.contracts import streams as table
from tickmesh.contracts.channels import REVOKE_SUBJECT, Kind, wildcard
from tickmesh.contracts.commands import command_subject


def test_roles_resolve_to_the_subjects_the_contracts_build():
    feed = p.role("market-feed")
    assert wildcard(Kind.PRICES) in feed.publish and not feed.responses
    broker = p.role("broker")
    assert command_subject("order.submit") in broker.subscribe and broker.responses
    assert f"$KV.{table.bucket('orders').name}.>" in broker.publish
    notifier = p.role("notifier")
    assert f"$JS.ACK.{table.stream('user_events').name}.notifier-trades.>" in notifier.publish
    perms = p.role("edge").server_permissions("_INBOX_edge")
    assert "_INBOX_edge.>" in perms["subscribe"]["allow"]
    # The edges answer one command themselves (audit.trades, from the audit trail they write),
    # and receive no other service's requests.
    assert perms["allow_responses"] is True
    assert [s for s in perms["subscribe"]["allow"] if s.startswith("tm.cmd.")] == [command_subject("audit.trades")]


def test_only_the_admin_may_revoke_manage_streams_or_use_wildcards_over_everything():
    for role in p.roles().values():
        if role.name == "admin":
            assert role.publish == (">",) and role.manage
            continue
        assert not role.manage, role.name
        for subject in role.publish:
            assert subject not in (">", REVOKE_SUBJECT, "tm.>", "tm.ctl.>"), (role.name, subject)
            assert not subject.startswith(
                ("$JS.API.STREAM.CREATE", "$JS.API.STREAM.UPDATE", "$JS.API.STREAM.DELETE", "$JS.API.STREAM.PURGE")
            ), (role.name, subject)
            assert table.matches(subject, REVOKE_SUBJECT) is False or subject.startswith("$"), (role.name, subject)
        assert ">" not in role.subscribe and "_INBOX.>" not in role.subscribe


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"publish": ["channel:nope"]}, "channel:nope"),
        ({"publish": ["tm.tick.*"]}, "is not channel:"),
        ({"subscribe": ["commands:nobody"]}, "no command names service"),
        ({"publish": ["control:tick"]}, "no control schema 'tick'"),
        ({"read": ["stream:nope"]}, "names no stream"),
        ({"write": ["stream:ticks"]}, "only buckets"),
        ({"consume": ["stream:user_events"]}, "needs stream:<key>/<durable>"),
        ({"publsh": []}, "unknown field"),
    ],
)
def test_a_role_naming_what_the_contracts_lack_is_refused(spec, message):
    with pytest.raises(p.PermissionsError, match=message.replace("(", r"\(").replace("'", "'")):
        p._role("x", spec)
    with pytest.raises(p.PermissionsError, match="no NATS role"):
        p.role("nobody")
