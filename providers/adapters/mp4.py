"""How long an MP4 (ISO base media) file plays, read from its movie header box (moov/mvhd).

Some providers say how long a generated video is, some only what was asked for, some neither;
the file itself always knows, and a video is billed by its seconds.
"""

import struct
from decimal import Decimal


def duration_seconds(data: bytes) -> Decimal | None:
    """The movie's duration (mvhd duration / timescale, to the millisecond), or None when the
    bytes are not an MP4 with a movie header."""
    moov = find_box(data, b"moov")
    mvhd = find_box(moov, b"mvhd") if moov is not None else None
    if mvhd is None or len(mvhd) < 20:
        return None
    if mvhd[0] == 1:  # version 1: 64-bit creation/modification times and duration
        if len(mvhd) < 32:
            return None
        timescale, duration = struct.unpack(">IQ", mvhd[20:32])
    else:
        timescale, duration = struct.unpack(">II", mvhd[12:20])
    if not timescale:
        return None
    return (Decimal(duration) / Decimal(timescale)).quantize(Decimal("0.001"))


def find_box(data: bytes, kind: bytes) -> bytes | None:
    """The payload of the first top-level box of ``kind`` in ``data``."""
    offset = 0
    while offset + 8 <= len(data):
        size, box = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if offset + 16 > len(data):
                return None
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
            header = 16
        elif size == 0:  # the box runs to the end of the file
            size = len(data) - offset
        if size < header:
            return None
        if box == kind:
            return data[offset + header:offset + size]
        offset += size
    return None
