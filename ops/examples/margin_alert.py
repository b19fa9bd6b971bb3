"""A margin-alert publisher: what a risk engine outside tickmesh writes to reach one user live.

Run it against a running stack (``make up``)::

    .venv/bin/python -m tickmesh.ops.examples.margin_alert --user alice --equity 8200 --requirement 10000

or feed it account snapshots, one JSON object per line, as a risk engine would::

    echo '{"user": "alice", "equity": "8200.00", "requirement": "10000.00"}' | \\
        .venv/bin/python -m tickmesh.ops.examples.margin_alert --stdin

The user sees a notification (kind ``risk``) in their notification centre, or on their next
visit if offline: notifications are stored. Below the requirement it is a critical margin call;
within ``--warn-pct`` percent above it, a warning. The notification id is derived from (user,
day, level), so running the check again the same day (a restart, a second risk-engine instance)
notifies once; a worse level the same day notifies again.

Connection: ``--nats`` (default ``NATS_URL`` or ``nats://127.0.0.1:4222``) as the NATS identity
given by ``--creds`` (a ``.creds`` file) or ``--nats-user`` with the password in the environment
variable ``NATS_PASSWORD`` (never on the command line, where ``ps`` shows it). Exit status: 0
sent (or nothing to send), 2 bad input (the message names the field), 1 NATS refused or did not
acknowledge.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from tickmesh.publish import Ack, Credentials, InvalidMessage, Publisher, PublishError, UnknownChannel, stable_id

CENT = Decimal("0.01")


class BadSnapshot(ValueError):
    """An account snapshot the check cannot use; the message names the field."""


@dataclass(frozen=True)
class MarginAlert:
    user: str
    level: str  # "critical" (below the requirement) or "warning" (close to it)
    title: str
    body: str
    id: str


def _decimal(snapshot: dict[str, Any], field: str) -> Decimal:
    raw = snapshot.get(field)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise BadSnapshot(f"{field}: not a decimal number ({str(raw)[:40]!r})") from None
    if raw is None or isinstance(raw, bool) or isinstance(raw, float) or not value.is_finite():
        raise BadSnapshot(f'{field}: give an exact decimal as a string, e.g. "8200.00"')
    return value


def check(snapshot: dict[str, Any], *, warn_pct: Decimal, now: datetime) -> MarginAlert | None:
    """The alert ``snapshot`` (user, equity, requirement) calls for, or ``None``. Pure."""
    user = snapshot.get("user")
    if not isinstance(user, str) or not user:
        raise BadSnapshot("user: required")
    equity, requirement = _decimal(snapshot, "equity"), _decimal(snapshot, "requirement")
    if requirement <= 0:
        raise BadSnapshot("requirement: must be positive")
    day = now.astimezone(UTC).date().isoformat()
    if equity < requirement:
        short = (requirement - equity).quantize(CENT)
        return MarginAlert(
            user,
            "critical",
            f"Margin call: add {short:,} to restore your margin",
            f"Equity {equity.quantize(CENT):,} is below the maintenance requirement "
            f"{requirement.quantize(CENT):,}. Positions may be reduced if it is not restored.",
            stable_id("margin", user, day, "critical"),
        )
    if equity < requirement * (1 + warn_pct / 100):
        headroom = (equity - requirement).quantize(CENT)
        return MarginAlert(
            user,
            "warning",
            f"Margin is close to the requirement ({headroom:,} above)",
            f"Equity {equity.quantize(CENT):,}, maintenance requirement {requirement.quantize(CENT):,}.",
            stable_id("margin", user, day, "warning"),
        )
    return None


async def send(pub: Publisher, alert: MarginAlert) -> Ack:
    return await pub.notify(alert.user, alert.title, kind="risk", severity=alert.level, body=alert.body, id=alert.id)


async def run(pub: Publisher, snapshots: Iterable[dict[str, Any]], *, warn_pct: Decimal, out=sys.stdout) -> int:
    """Check and send each snapshot; returns the exit status (see the module docstring)."""
    status = 0
    for snapshot in snapshots:
        try:
            alert = check(snapshot, warn_pct=warn_pct, now=datetime.now(UTC))
            if alert is None:
                print(f"{snapshot.get('user')}: margin fine, nothing sent", file=out)
                continue
            ack = await send(pub, alert)
        except (BadSnapshot, InvalidMessage, UnknownChannel) as exc:
            print(f"bad snapshot: {exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        except PublishError as exc:
            print(f"not sent: {exc}", file=sys.stderr)
            return 1
        note = " (already sent today)" if ack.duplicate else ""
        print(f"{alert.user}: {alert.level} margin alert stored as {ack.stream} #{ack.seq}{note}", file=out)
    return status


def _snapshots(args: argparse.Namespace) -> Iterable[dict[str, Any]]:
    if not args.stdin:
        yield {"user": args.user, "equity": args.equity, "requirement": args.requirement}
        return
    for n, line in enumerate(sys.stdin, 1):
        if line.strip():
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = {"user": None, "_line": n}
            yield obj if isinstance(obj, dict) else {"user": None}


def _credentials(args: argparse.Namespace) -> Credentials | None:
    if args.creds:
        return Credentials(creds_file=args.creds)
    if args.nats_user:
        return Credentials(user=args.nats_user, password=os.environ.get("NATS_PASSWORD", ""))
    return None


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Send margin alerts to tickmesh users.")
    p.add_argument("--nats", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--creds", help="NATS .creds file of this publisher's identity")
    p.add_argument("--nats-user", help="NATS user (password from the NATS_PASSWORD environment variable)")
    p.add_argument("--user", help="the tickmesh user to alert")
    p.add_argument("--equity", help="account equity, e.g. 8200.00")
    p.add_argument("--requirement", help="maintenance margin requirement, e.g. 10000.00")
    p.add_argument("--warn-pct", type=Decimal, default=Decimal("10"), help="warn within this %% above the requirement")
    p.add_argument("--stdin", action="store_true", help="read JSON snapshots, one per line, from stdin")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    args = p.parse_args(argv)
    if not args.stdin and not (args.user and args.equity and args.requirement):
        p.error("give --user, --equity and --requirement, or --stdin")
    try:
        pub = await Publisher.connect(
            args.nats,
            _credentials(args),
            name="margin-alert",
            connect_timeout=args.connect_timeout,
            deliver_timeout=15.0,
        )
    except Exception as exc:  # noqa: BLE001 - said to the user, with the URL's host only
        print(f"cannot connect to NATS: {exc}", file=sys.stderr)
        return 1
    async with pub:
        return await run(pub, _snapshots(args), warn_pct=args.warn_pct)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
