"""Demo accounts for local runs: ``tickmesh up`` seeds them once NATS is listening."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from tickmesh.services.common.holdings import Account, Position, account_key, encode_account

log = logging.getLogger(__name__)

D = Decimal

DEMO_ACCOUNTS: dict[str, Account] = {
    "alice": Account(
        D("100000.00"),
        {
            "AAPL": Position(D("50"), D("180.00")),
            "MSFT": Position(D("20"), D("401.50")),
            "NVDA": Position(D("100"), D("110.25")),
            "BTC-USD": Position(D("0.5"), D("60250.00")),
            "EUR/USD": Position(D("10000"), D("1.07310")),
        },
    ),
    "bob": Account(
        D("25000.00"),
        {
            "TSLA": Position(D("30"), D("251.10")),
            "SPY": Position(D("15"), D("540.00")),
            "ETH-USD": Position(D("4"), D("2980.00")),
            "GBP/USD": Position(D("5000"), D("1.26010")),
        },
    ),
    "carol": Account(
        D("250000.00"),
        {
            "BRK.B": Position(D("40"), D("430.00")),
            "GOOGL": Position(D("60"), D("165.40")),
            "AMZN": Position(D("25"), D("175.00")),
            "SOL-USD": Position(D("100"), D("140.00")),
            "DOGE-USD": Position(D("50000"), D("0.11000")),
            "USD/JPY": Position(D("20000"), D("149.500")),
        },
    ),
}


async def seed_accounts(kv, accounts: dict[str, Account]) -> list[str]:
    """Create each account that does not exist yet; returns the users created. Never
    overwrites: an existing account (traded on since) is left as it is."""
    from nats.js.errors import KeyWrongLastSequenceError

    created = []
    for user, account in accounts.items():
        try:
            await kv.create(account_key(user), encode_account(account))
            created.append(user)
        except KeyWrongLastSequenceError:
            pass
    return created


async def seed_demo_accounts(nats_url: str, *, attempts: int = 20, credentials: Any = None) -> list[str]:
    """Connect to ``nats_url`` (as ``credentials``, a :class:`tickmesh.natsconn.Credentials`:
    it writes the holdings bucket), make sure the streams and buckets exist and create the demo
    accounts (alice, bob, carol) that are missing. Idempotent; returns the users created.

    Meant for ``tickmesh up`` right after nats-server listens: JetStream may need a moment, so
    it retries for a few seconds, and a failure is logged, not raised (the stack still starts;
    the demo users then have no holdings).
    """
    import asyncio

    import nats

    from tickmesh.streams import HOLDINGS_BUCKET, ensure

    for attempt in range(attempts):
        try:
            nc = await nats.connect(
                [u.strip() for u in nats_url.split(",")],
                connect_timeout=2,
                max_reconnect_attempts=0,
                **(credentials.options() if credentials is not None else {}),
            )
            try:
                js = nc.jetstream()
                await ensure(js)
                created = await seed_accounts(await js.key_value(HOLDINGS_BUCKET), DEMO_ACCOUNTS)
            finally:
                await nc.close()
        except Exception as exc:
            if attempt == attempts - 1:
                log.warning("could not seed the demo accounts: %s", exc, extra={"event": "valuer.seed_failed"})
                return []
            await asyncio.sleep(0.25)
            continue
        if created:
            log.info("seeded demo accounts: %s", ", ".join(created), extra={"event": "valuer.seeded"})
        return created
    return []
