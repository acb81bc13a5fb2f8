"""An image's width and height from the first bytes of its file, without an imaging library.

PNG, GIF, WebP and JPEG say their size in a header: PNG's IHDR chunk (bytes 16-24), GIF's
logical screen (bytes 6-10), WebP's ``VP8 ``/``VP8L``/``VP8X`` chunk (within the first 30
bytes), JPEG's start-of-frame segment (after the APPn segments, found by walking the segment
lengths). A base64 payload is decoded only around the bytes read: 4 base64 characters carry 3
bytes, so any byte range can be decoded on its own, and a JPEG whose EXIF or ICC segments run to
kilobytes still costs a few small decodes, never the whole image.

Every reader returns ``None`` for data it cannot read (truncated, not an image, an unknown
format); none raises.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable

__all__ = ["image_size", "base64_image_size", "data_url_size"]

Size = tuple[int, int]
#: Reads ``n`` bytes at ``offset``; fewer (or none) past the end or on bad data.
ReadAt = Callable[[int, int], bytes]

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): not C4 (DHT),
# C8 (JPG extension) or CC (DAC), which share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# A JPEG with more segments than this before its frame header is not one a provider accepts.
_MAX_JPEG_SEGMENTS = 512


def image_size(data: bytes) -> Size | None:
    """``(width, height)`` of a PNG, GIF, WebP or JPEG file's bytes (its first bytes suffice for
    all but JPEG), or ``None``."""
    return _size(lambda offset, n: data[offset:offset + n])


def base64_image_size(payload: str) -> Size | None:
    """``(width, height)`` of an image given as standard base64 (no line breaks), decoding only
    the bytes its header needs; ``None`` when it cannot be read."""
    return _size(_base64_reader(payload))


def data_url_size(url: str) -> Size | None:
    """``(width, height)`` of the image in a ``data:[<type>];base64,<payload>`` URL, or ``None``
    (another URL, a payload that is not base64, an unreadable image)."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",", 5, 300)  # the media type and parameters are short
    if comma < 0 or not url[5:comma].endswith(";base64"):
        return None
    return _size(_base64_reader(url, comma + 1))


def _base64_reader(text: str, start: int = 0) -> ReadAt:
    def read(offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0:
            return b""
        first = offset // 3  # the 3-byte group holding byte `offset`
        last = (offset + n + 2) // 3  # one past the group holding the last byte wanted
        chunk = text[start + first * 4:start + last * 4]
        if len(chunk) % 4:  # the payload ends early, or without its padding
            chunk = chunk[:len(chunk) - len(chunk) % 4]
        try:
            decoded = binascii.a2b_base64(chunk, strict_mode=True)
        except (binascii.Error, ValueError):
            return b""
        skip = offset - first * 3
        return decoded[skip:skip + n]

    return read


def _size(read: ReadAt) -> Size | None:
    head = read(0, 30)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        return _positive(*struct.unpack(">II", head[16:24]))
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return _positive(*struct.unpack("<HH", head[6:10]))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if head[:2] == b"\xff\xd8":
        return _jpeg(read)
    return None


def _positive(width: int, height: int) -> Size | None:
    return (width, height) if width > 0 and height > 0 else None


def _webp(head: bytes) -> Size | None:
    if len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        return _positive(int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1)
    if chunk == b"VP8L" and head[20] == 0x2F:  # lossless: 14-bit width-1, height-1
        bits = int.from_bytes(head[21:25], "little")
        return _positive((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # lossy key frame: 14-bit sizes
        width, height = struct.unpack("<HH", head[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    return None


def _jpeg(read: ReadAt) -> Size | None:
    offset = 2
    for _ in range(_MAX_JPEG_SEGMENTS):
        marker = read(offset, 4)
        if len(marker) < 4 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if kind in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            offset += 2
            continue
        length = int.from_bytes(marker[2:4], "big")
        if kind in _SOF:
            frame = read(offset + 5, 4)  # after marker, length and sample precision
            if len(frame) < 4:
                return None
            height, width = struct.unpack(">HH", frame)
            return _positive(width, height)
        if kind in (0xD9, 0xDA) or length < 2:  # end of image, or scan data, before any frame
            return None
        offset += 2 + length
    return None
