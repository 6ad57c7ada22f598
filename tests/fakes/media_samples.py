"""Small, real media files made in code, for fakes to serve: a PNG of any size, a WAV of any
length, and an MP4 whose movie header says how long it plays."""

import io
import struct
import wave
import zlib
from functools import lru_cache


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@lru_cache(maxsize=32)
def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A solid-colour 8-bit RGB PNG."""
    row = b"\x00" + bytes(rgb) * width  # filter byte 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(row * height, 9)) + png_chunk(b"IEND", b""))


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@lru_cache(maxsize=32)
def wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """Mono 16-bit silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


@lru_cache(maxsize=32)
def mp4(seconds: float = 5.0, timescale: int = 1000) -> bytes:
    """An ISO base media file: ftyp, a moov holding only its movie header (mvhd, version 0) with
    the duration, and a few bytes of mdat. Players would find no track; duration readers do."""
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = box(b"mvhd", struct.pack(">B3xIIII", 0, 0, 0, timescale, round(seconds * timescale))
               + struct.pack(">IH10x", 0x10000, 0x100) + identity + b"\x00" * 24 + struct.pack(">I", 2))
    return ftyp + box(b"moov", mvhd) + box(b"mdat", b"\x00" * 64)
