"""The OpenFeature provider, held to the OpenFeature specification's provider requirements.

Neither openfeature-sdk (Python) nor @openfeature/web-sdk ships a provider contract suite in its
package (checked: the wheel and the npm tarballs hold no tests), so these tests check what the
specification asks of a provider (section 2): resolution details with value, variant and reason;
the default with FLAG_NOT_FOUND or TYPE_MISMATCH; metadata with a name; configuration-changed
events naming the flags; and the whole path through the SDK's own client and API.
"""

import asyncio

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus

from tests.support.timing import t
from tickmesh.flags import FlagStore
from tickmesh.flags.openfeature import TickmeshProvider

ALICE = EvaluationContext("alice", {"roles": ["user"], "entitlements": ["crypto"]})
ADMIN = EvaluationContext("root", {"roles": ["admin"]})


@pytest.fixture
async def provider(nc):
    store = await FlagStore.open(nc)
    for change in (
        {"name": "bool", "action": "create", "type": "boolean", "value": False},
        {"name": "bool", "action": "add_rule", "users": ["alice"], "value": True},
        {"name": "str", "action": "create", "type": "string", "value": "classic"},
        {"name": "str", "action": "add_rule", "roles": ["admin"], "value": "beta"},
        {"name": "int", "action": "create", "type": "number", "value": 10},
        {"name": "float", "action": "create", "type": "number", "value": 0.5},
        {"name": "obj", "action": "create", "type": "json", "value": {"cols": 3}},
        {"name": "obj", "action": "rollout", "percent": "100", "value": {"cols": 4}},
        {"name": "killed", "action": "create", "type": "boolean", "value": False},
        {"name": "killed", "action": "rollout", "percent": "100"},
        {"name": "killed", "action": "kill"},
    ):
        await store.change(change, by="test", via="api")
    p = await TickmeshProvider.open(nc)
    api.set_provider(p, domain="tickmesh-test")
    try:
        yield p, store
    finally:
        api.clear_providers()
        await p.flags.close()


async def test_every_type_resolves_with_value_variant_and_reason(provider):
    p, _ = provider
    assert p.get_metadata().name == "tickmesh"
    d = p.resolve_boolean_details("bool", False, ALICE)
    assert (d.value, d.variant, d.reason, d.error_code) == (True, "on", Reason.TARGETING_MATCH, None)
    assert p.resolve_boolean_details("bool", True, ADMIN).value is False
    assert p.resolve_string_details("str", "x", ADMIN).value == "beta"
    assert p.resolve_string_details("str", "x", ALICE).reason == Reason.DEFAULT
    assert p.resolve_integer_details("int", 0, ALICE).value == 10
    assert p.resolve_float_details("float", 0.0, ALICE).value == 0.5
    assert p.resolve_float_details("int", 0.0, ALICE).value == 10.0
    obj = p.resolve_object_details("obj", {}, ALICE)
    assert (obj.value, obj.reason, obj.variant) == ({"cols": 4}, Reason.SPLIT, "rollout")
    killed = p.resolve_boolean_details("killed", True, ALICE)
    assert (killed.value, killed.reason) == (False, Reason.DISABLED)
    assert await p.resolve_boolean_details_async("bool", False, ALICE) == d


@pytest.mark.parametrize(
    "method, key, default, code",
    [
        ("resolve_boolean_details", "nope", True, ErrorCode.FLAG_NOT_FOUND),
        ("resolve_boolean_details", "str", True, ErrorCode.TYPE_MISMATCH),
        ("resolve_string_details", "bool", "d", ErrorCode.TYPE_MISMATCH),
        ("resolve_integer_details", "float", 7, ErrorCode.TYPE_MISMATCH),
        ("resolve_object_details", "int", {"d": 1}, ErrorCode.TYPE_MISMATCH),
    ],
)
async def test_errors_return_the_callers_default_with_a_code(provider, method, key, default, code):
    p, _ = provider
    d = getattr(p, method)(key, default, ALICE)
    assert (d.value, d.error_code, d.reason) == (default, code, Reason.ERROR) and d.error_message


async def test_through_the_sdk_client_with_events_on_change(provider):
    p, store = provider
    client = api.get_client(domain="tickmesh-test")
    assert client.get_provider_status() == ProviderStatus.READY
    assert client.get_boolean_value("bool", False, ALICE) is True
    details = client.get_string_details("str", "x", ADMIN)
    assert (details.value, details.variant, details.flag_metadata["revision"] > 0) == ("beta", "rule", True)
    assert client.get_boolean_details("nope", True).error_code == ErrorCode.FLAG_NOT_FOUND
    changed = asyncio.Event()
    names = []
    client.add_handler(
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
        lambda details: (names.append(details.flags_changed), changed.set()),
    )
    await store.change({"name": "bool", "action": "kill"}, by="test", via="api")
    await asyncio.wait_for(changed.wait(), t(5))
    assert names[-1] == ["bool"]
    assert client.get_boolean_value("bool", True, ALICE) is False
