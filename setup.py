"""The wheel's package list, discovered: every package under each folder that ``package-dir`` in
pyproject.toml maps (``tickmesh.services.broker`` is ``services/broker``).

Only the top-level folders are named (in pyproject.toml); anything below them with an
``__init__.py`` is found by setuptools, so a new subpackage cannot drop out of the wheel.
tests/test_packaging.py builds the wheel and checks that every Python folder is in it.
"""

import tomllib
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def packages() -> list[str]:
    with open(HERE / "pyproject.toml", "rb") as fh:
        roots = tomllib.load(fh)["tool"]["setuptools"]["package-dir"]
    found = []
    for name, folder in roots.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(str(HERE / folder))]
    return sorted(found)


if __name__ == "__main__":
    setup(packages=packages())
