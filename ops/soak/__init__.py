"""The soak test (``tickmesh soak --minutes N``): see :mod:`tickmesh.ops.soak.run`."""
