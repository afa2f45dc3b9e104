# lichen.websocket.deflate: permessage-deflate (RFC 7692) with bounded memory.
#
# Strategy: wsproto's PerMessageDeflate does the compression; this subclass
# bounds what it may cost. Both directions are negotiated without context
# takeover, so no zlib stream outlives a message and an idle websocket holds
# none. Inbound, every piece is inflated with a cap of what the message may
# still grow by (the largest message setting), so a small compressed frame
# cannot inflate into gigabytes: one byte past the cap fails the message with
# 1009 before more is produced. Outbound, messages shorter than MIN_COMPRESSED
# go out plain (RFC 7692 lets a sender leave any message uncompressed): a
# fresh deflate stream for a few bytes costs more than it saves.
from __future__ import annotations

import zlib
from typing import Any

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

__all__ = ["BoundedDeflate", "negotiate", "MIN_COMPRESSED"]

MIN_COMPRESSED = 512


class BoundedDeflate(PerMessageDeflate):
    """PerMessageDeflate with no context takeover, inbound messages capped
    at `max_message` bytes once inflated, and small outbound messages left
    uncompressed."""

    def __init__(self, max_message: int) -> None:
        super().__init__(client_no_context_takeover=True, server_no_context_takeover=True)
        self.max_message = max_message
        self.inflated = 0  # bytes of the current inbound message so far

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        # (The parent's own, with a cap: its state attributes are its
        # documented behaviour in wsproto 1.2 and 1.3.)
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        room = self.max_message - self.inflated
        try:
            out = self._decompressor.decompress(bytes(data), room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room:
            return CloseReason.MESSAGE_TOO_BIG
        self.inflated += len(out)
        return out

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        out = super().frame_inbound_complete(proto, fin)
        if isinstance(out, bytes):
            self.inflated += len(out)
            if self.inflated > self.max_message:
                return CloseReason.MESSAGE_TOO_BIG
        if fin:
            self.inflated = 0
        return out

    def frame_outbound(self, proto: Any, opcode: Opcode, rsv: RsvBits, data: bytes,
                       fin: bool) -> tuple[RsvBits, bytes]:
        if fin and opcode is not Opcode.CONTINUATION and len(data) < MIN_COMPRESSED:
            return (rsv, data)  # a whole small message: plain
        return super().frame_outbound(proto, opcode, rsv, data, fin)


def negotiate(offers: tuple[str, ...], max_message: int) -> tuple[BoundedDeflate | None, str | None]:
    """The extension to use and the Sec-WebSocket-Extensions answer for a
    client's offers (the first permessage-deflate offer we can accept), or
    (None, None)."""
    for offer in offers:
        if offer.split(";", 1)[0].strip().lower() != PerMessageDeflate.name:
            continue
        ext = BoundedDeflate(max_message)
        try:
            params = ext.accept(offer)
        except ValueError:  # a malformed parameter value
            continue
        if params is None or params is False:
            continue
        answer = PerMessageDeflate.name if params is True or not params else f"{PerMessageDeflate.name}; {params}"
        return ext, answer
    return None, None
