"""Decoding user images safely: the pixel count is read from the file's header and checked against a
limit *before* anything is decoded.

A 389 KB PNG can declare 20000 x 20000 pixels; decoding it whole takes gigabytes (an OOM kill on a
Raspberry Pi). :func:`read_image` reads the header (PNG, JPEG, BMP, WebP, TIFF/BigTIFF, PBM/PGM/PPM/PAM/PFM,
GIF), refuses an image above ``max_pixels`` (config key ``source.max_pixels``, default
:data:`DEFAULT_MAX_PIXELS`) with :class:`ImageTooLarge`, and only then lets OpenCV decode it. A file
whose header it cannot read is not handed to OpenCV at all (OpenCV picks its decoder by content, not
by name): it is reported as unreadable, like a corrupt image. OpenCV decodes the bytes read
(``cv2.imdecode``), never the file name: a name that is not valid UTF-8 would crash ``cv2.imread``.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edge_fer.errors import SourceError

DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: about 150 MB as BGR
MAX_PIXELS_KEY = "source.max_pixels"


class ImageTooLarge(SourceError):
    """An image whose header declares more pixels than the configured limit."""

    def __init__(self, what: str, width: int, height: int, limit: int):
        super().__init__(
            f"{what} is {width}x{height} pixels ({width * height / 1e6:.1f} MP), above the limit "
            f"{MAX_PIXELS_KEY} = {limit} ({limit / 1e6:.1f} MP): not decoded (raise {MAX_PIXELS_KEY} to allow it)"
        )
        self.width, self.height, self.limit = width, height, limit


def check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """Raise :class:`ImageTooLarge` when ``width * height`` exceeds ``max_pixels`` (0/None: no limit)."""
    if max_pixels and width * height > max_pixels:
        raise ImageTooLarge(what, width, height, int(max_pixels))


# -- header parsers: each gets the file (at offset 0) and its first bytes; returns (w, h) or None ------


def _png(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    if len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    f.seek(2)
    for _ in range(10_000):  # segments before the frame header (APPn, DQT, DHT, COM ...)
        b = f.read(1)
        while b == b"\xff":  # fill bytes
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if length < 2:
            return None
        if marker in _SOF:
            body = f.read(5)
            if len(body) < 5:
                return None
            h, w = struct.unpack(">HH", body[1:5])
            return (w, h) if h else None  # height 0: defined later by a DNL marker; not supported
        f.seek(length - 2, 1)
        # the next byte must be a marker
        nxt = f.read(1)
        if nxt != b"\xff":
            return None
        f.seek(-1, 1)
    return None


def _bmp(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    if len(head) < 26:
        return None
    dib = struct.unpack("<I", head[14:18])[0]
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        w, h = struct.unpack("<HH", head[18:22])
    else:
        w, h = struct.unpack("<ii", head[18:26])
    return abs(w), abs(h)  # negative height: top-down rows


def _webp(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    if len(head) < 30:
        return None
    kind = head[12:16]
    if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L" and head[20] == 0x2F:
        b = head[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return w, h
    if kind == b"VP8X":
        w = 1 + int.from_bytes(head[24:27], "little")
        h = 1 + int.from_bytes(head[27:30], "little")
        return w, h
    return None


def _tiff(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    e = "<" if head[:2] == b"II" else ">"
    version = struct.unpack(e + "H", head[2:4])[0]
    big = version == 43
    if big:
        f.seek(8)
        (ifd,) = struct.unpack(e + "Q", f.read(8))
    else:
        (ifd,) = struct.unpack(e + "I", head[4:8])
    f.seek(ifd)
    raw = f.read(8 if big else 2)
    if len(raw) < (8 if big else 2):
        return None
    (n,) = struct.unpack(e + ("Q" if big else "H"), raw)
    size = 20 if big else 12
    dims: dict[int, int] = {}
    for _ in range(min(n, 4096)):
        ent = f.read(size)
        if len(ent) < size:
            break
        tag, typ = struct.unpack(e + "HH", ent[:4])
        if tag not in (256, 257):
            continue
        val = ent[12:] if big else ent[8:]
        if typ == 3:  # SHORT
            dims[tag] = struct.unpack(e + "H", val[:2])[0]
        elif typ == 4:  # LONG
            dims[tag] = struct.unpack(e + "I", val[:4])[0]
        elif typ == 16 and big:  # LONG8
            dims[tag] = struct.unpack(e + "Q", val[:8])[0]
        if len(dims) == 2:
            return dims[256], dims[257]
    return None


def _pnm(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    text = head.decode("latin-1")
    if text[:2] == "P7":  # PAM: WIDTH / HEIGHT lines
        w = h = None
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "WIDTH":
                w = int(parts[1])
            elif len(parts) >= 2 and parts[0] == "HEIGHT":
                h = int(parts[1])
            if parts[:1] == ["ENDHDR"]:
                break
        return (w, h) if w is not None and h is not None else None
    tokens: list[str] = []
    i = 2
    while len(tokens) < 2 and i < len(text):
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = len(text) if j < 0 else j + 1
        elif c.isspace():
            i += 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] != "#":
                j += 1
            tokens.append(text[i:j])
            i = j
    if len(tokens) == 2 and all(t.isdigit() for t in tokens):
        return int(tokens[0]), int(tokens[1])
    return None


def _gif(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    return struct.unpack("<HH", head[6:10]) if len(head) >= 10 else None


#: the most bytes an image file may hold (a larger one is unreadable: not read, skipped and counted)
MAX_IMAGE_BYTES = 256 << 20


def check_image_file(path: str | Path) -> int:
    """Before opening an image file: a regular file (a FIFO named ``x.jpg`` would block the reader, a
    device never ends) of at most :data:`MAX_IMAGE_BYTES`; returns its size. ``OSError`` otherwise
    (callers count the image as unreadable)."""
    from edge_fer.fsutil import file_kind

    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"{file_kind(st.st_mode)}, not an image file", str(path))
    if st.st_size > MAX_IMAGE_BYTES:
        raise OSError(errno.EFBIG, f"{st.st_size:,} bytes, above the {MAX_IMAGE_BYTES:,}-byte limit", str(path))
    return st.st_size


def read_image_bytes(path: str | Path) -> bytes:
    """The bytes of an image file, checked first (:func:`check_image_file`) and read with that bound."""
    check_image_file(path)
    with open(path, "rb") as f:
        data = f.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise OSError(errno.EFBIG, "the file grew above the image size limit", str(path))
    return data


def check_zip_member(info: zipfile.ZipInfo) -> None:
    """A zip member is read only when the size it declares is within :data:`MAX_IMAGE_BYTES` (the
    reader stops at the declared size, so a member cannot inflate beyond it): ``ValueError`` else."""
    if info.file_size > MAX_IMAGE_BYTES:
        raise ValueError(
            f"{info.filename} declares {info.file_size:,} bytes, above the {MAX_IMAGE_BYTES:,}-byte image limit"
        )


def image_size(src: str | Path | bytes) -> tuple[int, int] | None:
    """(width, height) from the header of an image file (a path, or the file's bytes), without decoding
    it; None when the format is not one of those above or the header is damaged. Raises ``OSError`` when
    the file cannot be read (or is no regular file, or too big: :func:`check_image_file`)."""
    if not isinstance(src, (bytes, bytearray, memoryview)):
        check_image_file(src)
    with io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else open(src, "rb") as f:
        head = f.read(4096)
        try:
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return _png(f, head)
            if head.startswith(b"\xff\xd8"):
                return _jpeg(f, head)
            if head.startswith(b"BM"):
                return _bmp(f, head)
            if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                return _webp(f, head)
            if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                return _tiff(f, head)
            if len(head) >= 2 and head[0:1] == b"P" and head[1:2] in b"1234567fF":
                return _pnm(f, head)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return _gif(f, head)
        except (struct.error, ValueError, IndexError, OSError, OverflowError):
            return None
    return None


def read_image(
    path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS, flags: int | None = None
) -> np.ndarray | None:
    """Decode an image file with OpenCV after checking its header: the image, or None when the file is
    missing, unreadable, not a recognized image or damaged (the caller skips and counts it). The file
    is read once (:func:`read_image_bytes`, bounded) and decoded from its bytes, so any file name works.

    :raises ImageTooLarge: the header declares more than ``max_pixels`` pixels (0/None: no limit).
    """
    import cv2

    from edge_fer.fsutil import path_text

    try:
        data = read_image_bytes(path)
    except OSError:
        return None
    size = image_size(data)
    if size is None:
        return None
    check_pixels(size[0], size[1], max_pixels, f"image {path_text(path)}")
    try:  # decoded from the bytes read: OpenCV is never given the name (one that is not UTF-8 crashes it)
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if flags is None else flags)
    except cv2.error:
        return None


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_IMAGE_BYTES",
    "ImageTooLarge",
    "check_image_file",
    "check_pixels",
    "check_zip_member",
    "image_size",
    "read_image",
    "read_image_bytes",
]
