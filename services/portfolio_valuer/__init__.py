"""portfolio-valuer: live portfolio valuations from holdings (KV) and prices (ticks).

This package also owns the account model shared by the domain services (``holdings``), the
latest-price book every one of them needs (``prices``) and the small publishing helpers
(``publishing``): the broker writes holdings, the notifier reads them, the valuer values them.
"""
