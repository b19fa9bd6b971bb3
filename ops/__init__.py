"""Operations: the local runner (``tickmesh up``), benchmarks, dashboards."""
