"""contracts/asyncapi.yaml: valid by the official AsyncAPI parser, and complete.

The parser runs under Node from ops/asyncapi (installed by `make test` from its lock file).
Staleness is checked with the other generated files (tests/contracts/test_codes.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.timing import t
from tickmesh.contracts import streams as table
from tickmesh.contracts.codes import CLOSES, ERRORS
from tickmesh.contracts.commands import command_subject, commands
from tickmesh.contracts.frames import client_frames, server_frames

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "contracts" / "asyncapi.yaml"
TOOLS = ROOT / "ops" / "asyncapi"


def _validate(path: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "node is needed to validate the AsyncAPI document (apt-get install nodejs)"
    assert (TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "the AsyncAPI parser is not installed: run `make test` (or `cd ops/asyncapi && npm ci`)"
    )
    return subprocess.run(
        [node, str(TOOLS / "validate.mjs"), str(path)], capture_output=True, text=True, timeout=t(120)
    )


def test_the_official_parser_accepts_the_document_without_errors_or_warnings():
    done = _validate(DOC)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid AsyncAPI 3.0.0" in done.stdout
    assert "warning" not in done.stdout, done.stdout


def test_the_parser_check_fails_on_a_broken_document(tmp_path):
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(
        DOC.read_text().replace("$ref: '#/components/schemas/tick'", "$ref: '#/components/schemas/nope'", 1)
    )
    assert broken.read_text() != DOC.read_text()
    done = _validate(broken)
    assert done.returncode == 1 and "INVALID" in done.stderr


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(DOC.read_text())


def _addresses(doc: dict) -> set[str]:
    return {c["address"] for c in doc["channels"].values() if c.get("address")}


def test_every_stored_subject_and_every_command_subject_is_a_channel(doc):
    as_patterns = {re.sub(r"\{[a-z]+\}", "*", a) for a in _addresses(doc)}
    for st in table.streams().values():
        for subject in st.subjects:
            assert subject in as_patterns, f"{subject} (stream {st.name}) is missing from asyncapi.yaml"
    for name in commands():
        assert command_subject(name) in as_patterns


def test_every_frame_and_every_code_is_described(doc):
    messages = doc["channels"]["websocket"]["messages"]
    for op in client_frames():
        assert f"client_{op}" in messages
    for op in server_frames():
        assert f"server_{op}" in messages
    schemas = doc["components"]["schemas"]
    assert {c["const"] for c in schemas["ErrorCode"]["oneOf"]} == {i.code for i in ERRORS.values()}
    assert {c["const"] for c in schemas["CloseCode"]["oneOf"]} == {i.code for i in CLOSES.values()}
    tick = schemas["tick"]
    assert tick["properties"]["last"]["pattern"].startswith("^") and "last" in tick["required"]
