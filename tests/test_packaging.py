"""The wheel holds every Python package of the repository and the contract data files.

Builds the real wheel (setuptools, as ``pip install`` does) from a copy of the sources and reads
its file list: a folder with Python modules that is not in the wheel would work in the editable
checkout and fail for anyone installing the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support.timing import t

ROOT = Path(__file__).resolve().parents[1]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "node_modules")


def _package_dirs() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["setuptools"]["package-dir"]


def _python_folders(package: str, folder: Path) -> dict[str, Path]:
    """Every folder below ``folder`` that holds a Python module, by its package name."""
    out = {}
    for py in folder.rglob("*.py"):
        if "__pycache__" in py.parts:
            continue
        rel = py.parent.relative_to(folder)
        out[".".join([package, *rel.parts])] = py.parent
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in set(_package_dirs().values()):
        shutil.copytree(ROOT / folder, src / folder, ignore=_IGNORE)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        timeout=t(180),
    )
    (path,) = out.glob("tickmesh-*.whl")
    return zipfile.ZipFile(path)


def test_every_python_folder_is_a_package_of_the_wheel(wheel):
    names = set(wheel.namelist())
    in_wheel = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    expected = {}
    for package, folder in _package_dirs().items():
        expected.update(_python_folders(package, ROOT / folder))
    missing = {p: str(f.relative_to(ROOT)) for p, f in expected.items() if p not in in_wheel}
    assert not missing, f"Python folders missing from the wheel (an __init__.py?): {missing}"
    for module in (
        "tickmesh/streams.py",
        "tickmesh/contracts/streams.py",
        "tickmesh/services/broker/engine.py",
        "tickmesh/ops/codegen/gen.py",
    ):
        assert module in names


def test_contract_data_and_samples_ship_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for data in sorted((ROOT / "contracts").glob("*.toml")):
        assert f"tickmesh/contracts/{data.name}" in names
    assert "tickmesh/services/market_feed/samples/ticks.csv" in names
