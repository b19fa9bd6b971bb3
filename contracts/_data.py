"""Loads the contract data files that ship inside this package."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """Return the parsed TOML file ``name`` from the contracts package (cached, read once)."""
    with resources.files(__package__).joinpath(name).open("rb") as fh:
        return tomllib.load(fh)
