"""``tickmesh service flags``: the admin commands ``flag.list`` and ``flag.update``.

Stateless: every change is a compare-and-set on the ``tm_flags`` bucket through
:class:`tickmesh.flags.FlagStore` (the same path as ``tickmesh flags``), recorded on the audit
stream as made by the verified user id the edge forwarded (never one from the payload). Several
instances share the load (queue group). Edges and services see a change through their own watch
of the bucket, not through this service.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import CommandRequest
from tickmesh.flags import FlagError, FlagStore
from tickmesh.services.runner import CommandError, run_service, serve_commands

from .settings import FlagServiceSettings

log = logging.getLogger(__name__)


class FlagAdmin:
    def __init__(self, store: FlagStore) -> None:
        self.store = store

    @staticmethod
    def _admin_only(req: CommandRequest) -> None:
        if "admin" not in req.roles:  # the edge checks roles too: defence in depth
            raise CommandError(ErrorCode.FORBIDDEN, "flags need the admin role")

    async def list(self, req: CommandRequest) -> dict[str, Any]:
        self._admin_only(req)
        flags, revision = await self.store.list()
        return {"flags": [f.to_json() for f in flags], "revision": revision}

    async def update(self, req: CommandRequest) -> dict[str, Any]:
        self._admin_only(req)
        try:
            flag, revision = await self.store.change(req.data, by=req.user, via="command")
        except FlagError as exc:
            raise CommandError(exc.code, exc.reason) from None
        return {"flag": None if flag is None else flag.to_json(), "revision": revision}


async def serve(settings: FlagServiceSettings, nc, stop) -> None:
    admin = FlagAdmin(await FlagStore.open(nc))
    subs = await serve_commands(nc, "flags", {"flag.list": admin.list, "flag.update": admin.update})
    log.info("flags service running", extra={"event": "flags.started"})
    try:
        await stop.wait()
    finally:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


SETTINGS = FlagServiceSettings


def main() -> None:
    run_service("flags", FlagServiceSettings, serve)
