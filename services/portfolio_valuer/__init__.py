"""portfolio-valuer: live portfolio valuations from holdings (KV) and prices (ticks).

The account model, the price book and the publishing helpers it uses are shared with the other
domain services and live in ``tickmesh.services.common``.
"""
