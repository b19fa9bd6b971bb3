"""The domain services: independent asyncio processes that publish on NATS (``tickmesh service NAME``)."""
