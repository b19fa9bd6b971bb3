"""What the domain services share (not a service: it has no ``service`` module, so ``tickmesh up``
does not start it).

* ``holdings``: the account model and the ``HOLDINGS_BUCKET`` it lives in (the broker writes it,
  the valuer and the notifier watch it);
* ``prices``: the latest price of every instrument, kept from the tick stream;

Services publish through :mod:`tickmesh.publish`, the same SDK other services use.
"""
