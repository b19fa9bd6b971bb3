"""What the publishing SDK raises. Every error has a stable ``code`` from ``contracts/codes.toml``
and says whether the message may have been stored (``stored``: ``False`` means certainly not,
``None`` means unknown; retrying with the same id is then safe, the duplicate window absorbs it).
"""

from __future__ import annotations

from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import ContractError


class PublishError(Exception):
    """Root of the SDK's errors."""

    code: int = ErrorCode.INTERNAL
    stored: bool | None = False

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        super().__init__(message)
        self.subject = subject


class InvalidMessage(PublishError, ContractError):
    """The message breaks its schema in ``messages.toml``; nothing was sent. ``field`` names the
    offending field (``None`` when the message as a whole is wrong)."""

    code = ErrorCode.INVALID_FIELD

    def __init__(self, schema: str, field: str | None, reason: str) -> None:
        ContractError.__init__(self, schema, field, reason)
        self.subject = None

    @classmethod
    def of(cls, exc: ContractError) -> InvalidMessage:
        return cls(exc.message, exc.field, exc.reason)


class UnknownChannel(PublishError, ValueError):
    """The channel name breaks the grammar of ``contracts/channels.py`` or names no channel a
    publisher may write to; nothing was sent."""

    code = ErrorCode.BAD_CHANNEL


class BufferFull(PublishError):
    """The bounded buffer of messages waiting for NATS is full: the message was **not** taken.
    The caller decides: retry later, drop it knowingly, or raise ``max_pending``."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str, *, subject: str | None = None, limit: str = "") -> None:
        super().__init__(message, subject=subject)
        self.limit = limit


class PublishTimeout(PublishError):
    """No acknowledgement within ``deliver_timeout`` (NATS unreachable, JetStream unavailable).
    The message may or may not be stored: publish it again with the same id."""

    code = ErrorCode.TIMEOUT
    stored = None

    def __init__(self, message: str, *, subject: str | None = None, attempts: int = 0) -> None:
        super().__init__(message, subject=subject)
        self.attempts = attempts


class PublishDenied(PublishError):
    """NATS refused the subject: this identity has no permission to publish there."""

    code = ErrorCode.FORBIDDEN


class PublishRejected(PublishError):
    """JetStream answered with an error that retrying will not fix (its description is the
    message)."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str, *, subject: str | None = None, err_code: int | None = None) -> None:
        super().__init__(message, subject=subject)
        self.err_code = err_code


class PublisherClosed(PublishError):
    """The publisher (its NATS connection) is closed; nothing more can be sent."""

    code = ErrorCode.UNAVAILABLE
