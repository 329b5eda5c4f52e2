"""Decoders must not invent records from bytes that are not their frames.

Random bytes (rich in 0xA0 headers) go through each protocol's stream decoder. Every
record reported as valid must be a complete, checksum-correct frame actually present in
the input; bytes holding no such frame must give no valid record at all. Protocols added
later join here.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tagtrail.readers.protocols import r2000

noise = st.lists(
    st.one_of(st.sampled_from([0xA0, 0x03, 0x04, 0x13, 0x89]), st.integers(0, 255)),
    max_size=400,
).map(bytes)


def _r2000_good_frames(data: bytes) -> set[bytes]:
    """Every substring shaped like an R2000 frame with a good checksum (by brute force)."""
    found = set()
    for i, byte in enumerate(data):
        if byte == 0xA0 and i + 1 < len(data) and data[i + 1] >= 3:
            end = i + data[i + 1] + 2
            if end <= len(data) and sum(data[i:end]) % 256 == 0:
                found.add(data[i:end])
    return found


def _r2000_frame_of(rec: r2000.Record) -> bytes:
    if isinstance(rec, r2000.TagRecord):
        data = (
            bytes([rec.freq_index << 2 | (rec.antenna - 1), rec.pc >> 8, rec.pc & 0xFF])
            + bytes.fromhex(rec.epc)
            + bytes([rec.rssi_raw])
        )
    elif isinstance(rec, r2000.RoundEnd):
        data = (
            bytes([rec.antenna - 1])
            + rec.read_rate.to_bytes(2, "big")
            + rec.total_reads.to_bytes(4, "big")
        )
    elif isinstance(rec, r2000.ResultCode):
        data = bytes([rec.code])
    else:
        data = rec.data
    body = bytes([0xA0, len(data) + 3, rec.address, rec.command]) + data
    return body + bytes([(256 - sum(body) % 256) % 256])


@settings(max_examples=400)
@given(data=noise, chunk=st.integers(1, 64))
def test_r2000_reports_only_frames_present_in_input(data: bytes, chunk: int) -> None:
    dec = r2000.StreamDecoder()
    out: list[r2000.Decoded] = []
    for i in range(0, len(data), chunk):
        out += dec.feed(data[i : i + chunk])
    out += dec.flush()
    valid = [r for r in out if not isinstance(r, r2000.DecodeFailure)]
    present = _r2000_good_frames(data)
    for rec in valid:
        frame = _r2000_frame_of(rec)
        assert frame in present
    if not present:
        assert valid == []
