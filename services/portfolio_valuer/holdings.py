"""Moved to :mod:`tickmesh.services.common.holdings`; this alias remains only for
``ops/bench/valuation.py`` (owned elsewhere) until it imports from there. Import nothing new here."""

from tickmesh.services.common.holdings import Account, Position  # noqa: F401
