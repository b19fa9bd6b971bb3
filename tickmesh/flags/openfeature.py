"""An OpenFeature provider over the mesh's flags, for Python services.

::

    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from tickmesh.flags.openfeature import TickmeshProvider

    api.set_provider(await TickmeshProvider.open(nc))
    client = api.get_client()
    client.get_boolean_value("ws.msgpack", False,
                             EvaluationContext("alice", {"roles": ["user"], "entitlements": ["crypto"]}))

Evaluation is local and synchronous (:class:`~tickmesh.flags.live.Flags` keeps the bucket in
memory), so the sync and async resolvers are the same. The context's ``targeting_key`` is the
user id; the attributes ``roles`` and ``entitlements`` (lists of strings) are what rules match.
A missing flag is ``FLAG_NOT_FOUND``, a flag of another type ``TYPE_MISMATCH`` (both return the
caller's default); every stored change emits ``PROVIDER_CONFIGURATION_CHANGED`` naming the
flags. Reasons are OpenFeature's: ``DEFAULT``, ``TARGETING_MATCH``, ``SPLIT``, ``DISABLED``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata

from .live import Flags
from .model import Subject

_REASONS = {
    "default": Reason.DEFAULT,
    "targeting_match": Reason.TARGETING_MATCH,
    "split": Reason.SPLIT,
    "disabled": Reason.DISABLED,
}


def _labels(raw: Any) -> frozenset[str]:
    if isinstance(raw, str):
        return frozenset((raw,))
    if isinstance(raw, (list, tuple, set, frozenset)):
        return frozenset(x for x in raw if isinstance(x, str))
    return frozenset()


def subject_of(context: EvaluationContext | None) -> Subject:
    if context is None:
        return Subject()
    attrs = context.attributes or {}
    return Subject(context.targeting_key or None, _labels(attrs.get("roles")), _labels(attrs.get("entitlements")))


class TickmeshProvider(AbstractProvider):
    def __init__(self, flags: Flags) -> None:
        super().__init__()
        self.flags = flags
        self._dispose: Callable[[], None] | None = None

    @classmethod
    async def open(cls, nc: Any) -> TickmeshProvider:
        """A provider over a new :class:`Flags` on ``nc``, ready (stored flags replayed)."""
        return cls(await Flags.open(nc))

    def get_metadata(self) -> Metadata:
        return Metadata(name="tickmesh")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        if self._dispose is None:
            self._dispose = self.flags.on_change(self._changed)

    def shutdown(self) -> None:
        if self._dispose is not None:
            self._dispose()
            self._dispose = None

    def _changed(self, names: frozenset[str]) -> None:
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=sorted(names)))

    def _resolve(
        self,
        key: str,
        default: Any,
        context: EvaluationContext | None,
        kinds: tuple[str, ...],
        convert: Callable[[Any], Any] = lambda v: v,
    ) -> FlagResolutionDetails[Any]:
        flag = self.flags.get(key)
        if flag is None:
            return FlagResolutionDetails(default, ErrorCode.FLAG_NOT_FOUND, f"no flag named {key}", Reason.ERROR)
        if flag.type not in kinds:
            return FlagResolutionDetails(default, ErrorCode.TYPE_MISMATCH, f"{key} is a {flag.type} flag", Reason.ERROR)
        result = self.flags.evaluate(key, subject_of(context))
        if result is None:  # deleted between the two reads
            return FlagResolutionDetails(default, ErrorCode.FLAG_NOT_FOUND, f"no flag named {key}", Reason.ERROR)
        try:
            value = convert(result.value)
        except (TypeError, ValueError) as exc:
            return FlagResolutionDetails(default, ErrorCode.TYPE_MISMATCH, str(exc), Reason.ERROR)
        return FlagResolutionDetails(
            value,
            reason=_REASONS.get(result.reason, Reason.UNKNOWN),
            variant=result.variant,
            flag_metadata={"revision": self.flags.revision},
        )

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, ("boolean",))

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, ("string",))

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, ("number",), _as_int)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, ("number",), float)

    def resolve_object_details(
        self, flag_key: str, default_value: Any, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[Any]:
        return self._resolve(flag_key, default_value, evaluation_context, ("json",))


def _as_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value} is not an integer")
    return int(value)
