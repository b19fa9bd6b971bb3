"""The pure evaluator: statistics of the rollout, stable bucketing, and the order of precedence."""

import hashlib
import math
import subprocess
import sys

import pytest

from tickmesh.contracts.codes import ErrorCode
from tickmesh.flags.changes import apply_change, validate_change
from tickmesh.flags.evaluate import FlagSet, bucket, evaluate
from tickmesh.flags.model import Flag, FlagError, Rollout, Rule, Schedule, Subject, parse_percent

USERS = [f"user-{i:05d}" for i in range(10_000)]
NOW = 1_795_630_850_000_000


def flag(**kw):
    return Flag(**{"name": "ws.msgpack", "type": "boolean", "default": False, **kw})


def in_rollout(f):
    return sum(evaluate(f, Subject(u), NOW).value is True for u in USERS)


@pytest.mark.parametrize("percent", ["1", "10", "33.33", "50", "90", "99.5"])
def test_percentages_hold_within_statistical_bounds_over_10000_users(percent):
    p = parse_percent(percent) / 10_000
    n = len(USERS)
    got = in_rollout(flag(rollout=Rollout(parse_percent(percent), True)))
    sigma = math.sqrt(n * p * (1 - p))
    # Five standard deviations: a fair hash lands inside with probability 1 - 6e-7.
    assert abs(got - n * p) <= 5 * sigma, (percent, got)


def test_zero_and_hundred_are_exact():
    assert in_rollout(flag(rollout=Rollout(0, True))) == 0
    assert in_rollout(flag(rollout=Rollout(10_000, True))) == len(USERS)


def test_growing_the_rollout_only_adds_users():
    cohorts = []
    for pct in (1, 10, 25, 50, 100):
        f = flag(rollout=Rollout(pct * 100, True))
        cohorts.append({u for u in USERS if evaluate(f, Subject(u), NOW).value})
    for smaller, larger in zip(cohorts, cohorts[1:], strict=False):
        assert smaller < larger


def test_bucketing_is_the_documented_hash_and_the_same_in_another_process():
    # PROTOCOL.md: int(sha256(flag ":" user)[:8 bytes]) mod 10000, independent of PYTHONHASHSEED.
    expected = int.from_bytes(hashlib.sha256(b"ws.msgpack:alice").digest()[:8], "big") % 10_000
    assert bucket("ws.msgpack", "alice") == expected
    code = "from tickmesh.flags import bucket; print([bucket('ws.msgpack', u) for u in ('alice','bob','carol')])"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "2")
    }
    assert outs == {str([bucket("ws.msgpack", u) for u in ("alice", "bob", "carol")]) + "\n"}


def test_two_flags_at_half_pick_independent_cohorts():
    a = {u for u in USERS if bucket("feature.a", u) < 5000}
    b = {u for u in USERS if bucket("feature.b", u) < 5000}
    both = len(a & b)
    assert abs(both - 2500) <= 5 * math.sqrt(10_000 * 0.25 * 0.75)


def test_precedence_kill_then_schedule_then_rules_then_rollout():
    rule = Rule(value=True, users=frozenset({"alice"}))
    everyone = Rollout(10_000, True)
    f = flag(rules=(rule,), rollout=everyone)
    assert evaluate(f, Subject("alice"), NOW).reason == "targeting_match"
    assert evaluate(f, Subject("bob"), NOW).reason == "split"
    assert evaluate(f, Subject(None), NOW).reason == "default"  # a process-wide subject is in no rollout
    killed = flag(rules=(rule,), rollout=everyone, killed=True)
    assert evaluate(killed, Subject("alice"), NOW).to_json() == {"value": False, "variant": "off", "reason": "disabled"}
    later = flag(rules=(rule,), rollout=everyone, schedule=Schedule(NOW + 1, None))
    assert evaluate(later, Subject("alice"), NOW).reason == "default"
    assert evaluate(later, Subject("alice"), NOW + 1).reason == "targeting_match"
    ended = flag(rollout=everyone, schedule=Schedule(None, NOW))
    assert evaluate(ended, Subject("bob"), NOW).value is False


def test_rules_need_every_criterion_they_give():
    rule = Rule(value="beta", roles=frozenset({"admin", "support"}), entitlements=frozenset({"crypto"}))
    f = Flag(name="theme", type="string", default="classic", rules=(rule,))
    assert evaluate(f, Subject("a", frozenset({"admin"}), frozenset({"crypto"})), NOW).value == "beta"
    assert evaluate(f, Subject("a", frozenset({"admin"}), frozenset({"fx"})), NOW).value == "classic"
    assert evaluate(f, Subject("a", frozenset({"user"}), frozenset({"crypto"})), NOW).variant == "default"
    assert evaluate(f, Subject("a", frozenset({"support"}), frozenset({"crypto"})), NOW).variant == "rule"


def test_flag_set_versions_grow_with_revisions_and_schedule_boundaries():
    s = FlagSet()
    s.apply("a", flag(name="a", schedule=Schedule(NOW + 10, NOW + 20)), 3)
    s.apply("b", flag(name="b"), 4)
    assert s.version(NOW) == 4_000_000
    assert s.next_boundary(NOW) == (NOW + 10, frozenset({"a"}))
    assert s.version(NOW + 10) == 4_000_001 and s.version(NOW + 20) == 4_000_002
    assert s.next_boundary(NOW + 20) is None
    assert s.apply("b", None, 5) and s.version(NOW) == 5_000_000 and "b" not in s.flags
    assert not s.apply("a", flag(name="a", schedule=Schedule(NOW + 10, NOW + 20)), 6)


def change(current, by="admin", **raw):
    return apply_change(current, validate_change(raw), by=by, now_us=NOW)


def test_changes_build_valid_definitions_and_stamp_who():
    f = change(None, name="ws.msgpack", action="create", type="boolean", description="MessagePack codec")
    assert f.default is False and f.updated_by == "admin" and f.updated_at == NOW
    f = change(f, by="carol", name="ws.msgpack", action="rollout", percent="12.5")
    assert f.rollout == Rollout(1250, True) and f.updated_by == "carol"
    f = change(f, name="ws.msgpack", action="add_rule", roles=["admin"])
    assert f.rules == (Rule(True, roles=frozenset({"admin"})),)
    f = change(f, name="ws.msgpack", action="kill")
    assert f.killed and Flag.from_json(f.name, f.to_json()) == f
    assert change(f, name="ws.msgpack", action="delete") is None


@pytest.mark.parametrize(
    "current, raw, code",
    [
        (None, {"name": "x", "action": "set", "value": True}, ErrorCode.UNKNOWN_FLAG),
        (None, {"name": "Bad Name", "action": "create", "type": "boolean"}, ErrorCode.INVALID_FLAG),
        (None, {"name": "x", "action": "create"}, ErrorCode.INVALID_FLAG),
        (None, {"name": "x", "action": "create", "type": "string"}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "create", "type": "boolean"}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "set", "value": "yes"}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "rollout", "percent": "100.5"}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "rollout", "percent": "10.125"}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "add_rule", "value": True}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "remove_rule", "index": 0}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "schedule", "starts_at": NOW, "ends_at": NOW}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "set"}, ErrorCode.INVALID_FLAG),
        (flag(name="x"), {"name": "x", "action": "explode"}, ErrorCode.INVALID_FIELD),
        (flag(name="x"), {"name": "x", "action": "add_rule", "users": ["bob smith"]}, ErrorCode.INVALID_FIELD),
    ],
)
def test_bad_changes_are_refused_with_a_stable_code(current, raw, code):
    with pytest.raises(FlagError) as info:
        apply_change(current, validate_change(raw), by="admin", now_us=NOW)
    assert info.value.code == code and info.value.reason


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"type": "colour", "default": 1},
        {"type": "boolean", "default": "true"},
        {"type": "boolean", "default": False, "rules": [{"value": True}]},
        {"type": "boolean", "default": False, "rollout": {"percent": "-1", "value": True}},
        {"type": "json", "default": {"x": "y" * 5000}},
        {"type": "number", "default": float("nan")},
        {"type": "boolean", "default": False, "name": "other"},
    ],
)
def test_unreadable_stored_definitions_are_refused(raw):
    with pytest.raises(FlagError):
        Flag.from_json("x", raw)


def test_evaluation_counts_have_bounded_labels():
    from tickmesh import metrics

    def count(flag, variant):
        return (
            metrics.REGISTRY.get_sample_value("tickmesh_flag_evaluations_total", {"flag": flag, "variant": variant})
            or 0
        )

    before = count("ws.msgpack", "on")
    metrics.flag_evaluated("ws.msgpack", "on", 3)
    assert count("ws.msgpack", "on") == before + 3
    other = count("other", "other")
    metrics.flag_evaluated("Bad Name", "because")
    for i in range(300):  # more names than flags can exist: the excess is "other"
        metrics.flag_evaluated(f"flood.{i}", "on")
    assert count("other", "other") == other + 1
    names = {
        s.labels["flag"] for m in metrics.REGISTRY.collect() if m.name == "tickmesh_flag_evaluations" for s in m.samples
    }
    assert len(names) <= 257 and "flood.299" not in names
