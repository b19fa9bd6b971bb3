"""The NATS subjects live in contracts/ only: no code outside it spells a ``tm.`` subject.

Services, the edge, the operator tools and the SDK build every subject through
``tickmesh.contracts`` (channels, commands, control subjects, streams.toml). A hand-spelled
``"tm.user.x.trades"`` elsewhere would drift silently from the contract, the permissions and
the AsyncAPI document generated from it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("edge", "services", "ops", "tickmesh")
SUBJECT = re.compile(r"(?<![\w$])tm\.[a-z_*>]")


def test_no_subject_is_spelled_outside_contracts():
    found = []
    files = [p for d in CODE for p in (ROOT / d).rglob("*.py") if "node_modules" not in p.parts]
    assert len(files) > 100  # the walk found the code
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if SUBJECT.search(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:80]!r}")
    assert not found, "subjects spelled outside contracts/:\n" + "\n".join(found)


def test_the_check_sees_a_spelled_subject():
    assert SUBJECT.search("tm.user.alice.trades") and SUBJECT.search("prefix tm.tick.*")
    assert not SUBJECT.search("$KV.tm_holdings.>") and not SUBJECT.search("utm.x")
