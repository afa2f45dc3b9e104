# lichen.http.events: what the request parser hands out, one message at a time.
#
# Strategy: plain data. A message is a Request (its head), zero or more
# bytes (its body, de-chunked) and END_OF_MESSAGE. Request is a slots
# dataclass whose __init__ only stores its fields, so the C fast lane can
# fill one directly; EndOfMessage is a singleton compared by identity.
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Request", "EndOfMessage", "END_OF_MESSAGE", "Event"]


@dataclass(slots=True)
class Request:
    """The head of one request; always the first event of a message.

    All byte fields are raw (not percent-decoded).  ``headers`` keeps the
    order received, with names lower-cased and values stripped of
    surrounding whitespace; repeated fields stay separate entries.
    """

    method: str
    target: bytes
    path: bytes
    query: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    content_length: int | None
    chunked: bool
    expect_continue: bool
    host: bytes | None


class EndOfMessage:
    """Marks the end of a request body.  A singleton: ``EndOfMessage()`` is
    always ``END_OF_MESSAGE``, so ``ev is END_OF_MESSAGE`` works."""

    __slots__ = ()

    def __new__(cls) -> EndOfMessage:
        return END_OF_MESSAGE

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"

    def __reduce__(self) -> tuple:
        return (EndOfMessage, ())


END_OF_MESSAGE: EndOfMessage = object.__new__(EndOfMessage)

Event = Request | bytes | EndOfMessage
