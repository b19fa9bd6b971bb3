"""Regenerates the files derived from the contract data: ``python -m tickmesh.ops.codegen``.

A development tool that writes into the repository (``contracts/PROTOCOL.md``, ``web/``): it
lives in ``ops/``, not in the runtime package ``contracts``, and is meaningful only in a checkout.

Generated regions sit between ``BEGIN GENERATED: <name>`` and ``END GENERATED: <name>`` marker
lines; :func:`stale` lists the files whose regions differ from what the data says, and a test
fails on any. Other generators (the TypeScript types) register in :data:`TARGETS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tickmesh.contracts.codes import CLOSES, ERRORS
from tickmesh.contracts.commands import commands

from . import asyncapi, gen_ts, natsconf, openapi

ROOT = Path(__file__).resolve().parents[2]


def code_tables() -> str:
    rows = [
        "### Error codes (`err` frames)",
        "",
        "HTTP is the status of an HTTP endpoint's answer whose `err` body carries the code.",
        "",
        "| code | name | retry | HTTP | meaning |",
        "|---:|---|---|---:|---|",
    ]
    rows += [
        f"| {i.code} | `{i.name}` | {'yes' if i.retry else 'no'} | {i.http} | {i.meaning} |" for i in ERRORS.values()
    ]
    rows += [
        "",
        "### Close codes",
        "",
        'Codes 4000-4099 mean "reconnect with backoff"; codes 4100-4199 mean "do not reconnect',
        'automatically" (the user must act: a new login, a permission). An HTTP endpoint refuses',
        "a request for the same condition with the HTTP status shown and an `err` body carrying",
        'the close code itself (for example 403 with `{"op":"err","code":4102}` for a revoked user).',
        "",
        "| code | name | reconnect | HTTP | meaning |",
        "|---:|---|---|---:|---|",
    ]
    rows += [
        f"| {i.code} | `{i.name}` | {'yes' if i.retry else 'no'} | {i.http} | {i.meaning} |" for i in CLOSES.values()
    ]
    return "\n".join(rows)


def code_enums() -> str:
    """contracts/code_enums.py: the codes as static enum classes (editors and mypy see members)."""
    lines = [
        '"""Error and close codes as enums. GENERATED from codes.toml by ``python -m tickmesh.ops.codegen``:',
        "do not edit (a test fails when this file is stale; ``contracts.codes`` checks it at import).",
        '"""',
        "",
        "from enum import IntEnum",
        "",
    ]
    for cls, table in (("ErrorCode", ERRORS), ("CloseCode", CLOSES)):
        lines += ["", f"class {cls}(IntEnum):"]
        lines += [f"    {info.name.upper()} = {info.code}" for info in sorted(table.values(), key=lambda i: i.code)]
        lines.append("")
    return "\n".join(lines)


def command_table() -> str:
    rows = ["| command | roles | data schema | what it does |", "|---|---|---|---|"]
    for c in commands().values():
        rows.append(f"| `{c.name}` | {', '.join(sorted(c.roles))} | `{c.request}` | {c.doc} |")
    return "\n".join(rows)


# file (relative to the repository root) -> {region name: renderer}
TARGETS: dict[str, dict[str, Callable[[], str]]] = {
    "contracts/PROTOCOL.md": {"codes": code_tables, "commands": command_table},
    "helm/tickmesh/values.yaml": {
        "nats-authorization": natsconf.values_authorization,
        "nats-passwords": natsconf.values_env,
    },
}
# Whole files generated from the contracts: path -> renderer.
WHOLE_FILES: dict[str, Callable[[], str]] = {}
WHOLE_FILES["web/packages/client/src/generated/contracts.ts"] = gen_ts.render
WHOLE_FILES["contracts/asyncapi.yaml"] = asyncapi.render
WHOLE_FILES["helm/tickmesh/files/nats-authorization.conf"] = natsconf.embedded_conf
WHOLE_FILES["helm/tickmesh/files/nats-users.yaml"] = natsconf.users_file
WHOLE_FILES["contracts/openapi.yaml"] = openapi.render
WHOLE_FILES["contracts/code_enums.py"] = code_enums


def _render(text: str, regions: dict[str, Callable[[], str]], *, comment: str = "html") -> str:
    """Replace each region between its markers: ``<!-- BEGIN GENERATED: name -->`` lines in
    Markdown, ``# BEGIN GENERATED: name`` lines (any indentation) in YAML."""
    for name, render in regions.items():
        if comment == "html":
            pattern = re.compile(rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(\n<!-- END GENERATED: {name} -->)", re.S)
        else:
            pattern = re.compile(
                rf"(^[ \t]*# BEGIN GENERATED: {name}\b[^\n]*\n)(?:.*?\n)?([ \t]*# END GENERATED: {name}\b)", re.S | re.M
            )
            if not pattern.search(text):
                raise ValueError(f"region {name!r} markers not found")
            text = pattern.sub(lambda m, render=render: m.group(1) + render() + "\n" + m.group(2), text)
            continue
        if not pattern.search(text):
            raise ValueError(f"region {name!r} markers not found")
        text = pattern.sub(lambda m, render=render: m.group(1) + render() + m.group(2), text)
    return text


def _expected() -> dict[Path, str]:
    out = {}
    for rel, regions in TARGETS.items():
        path = ROOT / rel
        out[path] = _render(path.read_text(), regions, comment="yaml" if rel.endswith(".yaml") else "html")
    for rel, render in WHOLE_FILES.items():
        out[ROOT / rel] = render()
    return out


def stale() -> list[str]:
    return [str(p.relative_to(ROOT)) for p, text in _expected().items() if not p.exists() or p.read_text() != text]


def write() -> list[str]:
    changed = stale()
    for path, text in _expected().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return changed


def main() -> int:
    changed = write()
    print("regenerated: " + ", ".join(changed) if changed else "all generated files are fresh")
    return 0
