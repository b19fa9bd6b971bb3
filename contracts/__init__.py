"""The contracts of tickmesh: channels and subjects, message schemas, error codes, the wire protocol.

The data files beside this package (``codes.toml``, ``messages.toml``, ``commands.toml``,
``streams.toml``, ``frames.toml``, ``instruments.toml``) and ``PROTOCOL.md`` are the single
source of truth; the Python modules here read them, and the TypeScript client and the AsyncAPI
document (``asyncapi.yaml``) are generated from them (``python -m tickmesh.ops.codegen``).
"""
