"""Runnable examples of using tickmesh from outside: ``python -m tickmesh.ops.examples.<name>``."""
