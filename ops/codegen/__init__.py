"""Generators of the files derived from ``contracts/`` (PROTOCOL.md tables, the TypeScript
types of the web client): development tools run from a checkout, ``python -m tickmesh.ops.codegen``."""
