"""Real image files of known sizes, built for tests (Pillow comes with matplotlib, a test
dependency), and the data URLs and content parts that carry them."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

from PIL import Image


def png_bytes(width: int, height: int) -> bytes:
    """A valid PNG written by hand (signature, IHDR, one IDAT, IEND): no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))  # filter 0, grey pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def pillow_bytes(width: int, height: int, fmt: str, **options: Any) -> bytes:
    mode = "RGBA" if options.pop("alpha", False) else "RGB"
    out = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 60, 128)[:len(mode)]).save(out, format=fmt, **options)
    return out.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def chat_image(url: str, detail: str | None = "high") -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if detail is not None:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def anthropic_image(data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": base64.b64encode(data).decode()}}
