# Byte-level mutations of HTTP messages for the hypothesis tests
# (test_http_fuzz.py, test_http_fastpath.py): flips, overwrites, insertions of
# random bytes or of given protocol pieces, deletions, duplications and
# truncation, a few per example.
from __future__ import annotations

from typing import Sequence

from hypothesis import strategies as st


@st.composite
def mutated(draw, base, pieces: Sequence[bytes], rounds: Sequence[int] = (1, 1, 1, 2, 3),
            centred: bool = False, max_delete: int = 4, max_duplicate: int = 30) -> bytes:
    """`base` (a strategy for bytes) with a few mutations; `pieces` are the
    protocol fragments that insertions draw from besides random bytes.
    `centred` steers positions towards the middle (hypothesis favours the
    ends of a range, and most mutations would hit the method)."""
    data = bytearray(draw(base))
    for _ in range(draw(st.sampled_from(rounds))):
        op = draw(st.sampled_from(["flip", "set", "insert", "piece", "delete", "duplicate", "truncate"]))
        shift = len(data) // 2 if centred else 0
        pos = (draw(st.integers(0, 1 << 16)) + shift) % (len(data) + 1)
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "piece":
            data[pos:pos] = draw(st.sampled_from(pieces))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, max_delete))]
        elif op == "duplicate":
            data[pos:pos] = data[pos:min(len(data), pos + draw(st.integers(1, max_duplicate)))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)
