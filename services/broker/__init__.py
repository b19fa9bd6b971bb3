"""broker: a paper broker answering ``order.submit`` and ``order.cancel``.

It stands in for the platform's order system and is replaceable by it: what the rest of tickmesh
relies on is only its outputs, ``execution`` events on each user's ``trades`` channel and fills
applied to the ``HOLDINGS_BUCKET`` accounts (see ``tickmesh.services.common.holdings``).
"""
