"""Feature flags as data in NATS (the ``tm_flags`` bucket), evaluated the same way everywhere.

``Flags`` (live.py) is what services and edges read flags through; ``FlagStore`` (store.py) is
the one way to change them (admin command, CLI); ``evaluate`` (evaluate.py) is the pure
evaluator both rely on. PROTOCOL.md ("Feature flags") describes the model and the channel.
"""

from .evaluate import Evaluation, FlagSet, bucket, evaluate
from .live import Flags
from .model import Flag, FlagError, Subject
from .store import FLAGS_BUCKET, FlagStore

__all__ = [
    "Evaluation",
    "Flag",
    "FlagError",
    "FlagSet",
    "FlagStore",
    "Flags",
    "FLAGS_BUCKET",
    "Subject",
    "bucket",
    "evaluate",
]
