"""A small RGB raster and its PNG encoding, with the standard library only (zlib, struct).

Why not a plotting library: neither matplotlib nor Pillow is a VibeML dependency or in its lock, and the
picture VibeML draws (a few line charts with axes and labels) needs only lines, rectangles and text.
PNG is a zlib stream of filtered scanlines in CRC-checked chunks (RFC 2083); this writes 8-bit RGB,
filter 0 (none) on every row, which every viewer reads. Text uses a 3×5 pixel font (upper case, digits
and a few signs), scaled up.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["Canvas", "encode_png", "text_width"]

Color = tuple[int, int, int]

_FONT_ROWS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001010010",
    "8": "111101111101111",
    "9": "111101111001111",
    "A": "010101111101101",
    "B": "110101110101110",
    "C": "011100100100011",
    "D": "110101101101110",
    "E": "111100110100111",
    "F": "111100110100100",
    "G": "011100101101011",
    "H": "101101111101101",
    "I": "111010010010111",
    "J": "001001001101010",
    "K": "101101110101101",
    "L": "100100100100111",
    "M": "101111111101101",
    "N": "110101101101101",
    "O": "010101101101010",
    "P": "110101110100100",
    "Q": "010101101110011",
    "R": "110101110101101",
    "S": "011100010001110",
    "T": "111010010010010",
    "U": "101101101101111",
    "V": "101101101101010",
    "W": "101101111111101",
    "X": "101101010101101",
    "Y": "101101010010010",
    "Z": "111001010100111",
    ".": "000000000000010",
    ",": "000000000010100",
    "-": "000000111000000",
    "+": "000010111010000",
    ":": "000010000010000",
    "/": "001001010100100",
    "$": "011110010011110",
    "(": "001010010010001",
    ")": "100010010010100",
    "%": "101001010100101",
    "=": "000111000111000",
    "_": "000000000000111",
    " ": "000000000000000",
}
_UNKNOWN = "111101101101111"


def text_width(text: str, scale: int = 2) -> int:
    """Pixels ``text`` takes at ``scale`` (4 font columns a character, the last one spacing)."""
    return len(text) * 4 * scale - scale if text else 0


class Canvas:
    """An RGB image to draw on; coordinates start at the top left, out-of-range pixels are clipped."""

    def __init__(self, width: int, height: int, background: Color = (255, 255, 255)) -> None:
        if width < 1 or height < 1:
            raise ValueError("a canvas needs at least one pixel")
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(color)

    def get(self, x: int, y: int) -> Color:
        i = (y * self.width + x) * 3
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill the rectangle with corners (x0, y0) and (x1, y1), both included."""
        for y in range(max(0, min(y0, y1)), min(self.height, max(y0, y1) + 1)):
            for x in range(max(0, min(x0, x1)), min(self.width, max(x0, x1) + 1)):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1, dash: int = 0) -> None:
        """A straight line (Bresenham), ``width`` pixels thick; ``dash`` > 0 draws dashes that long."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, n = dx + dy, 0
        half = width // 2
        while True:
            if not dash or (n // dash) % 2 == 0:
                for ox in range(-half, width - half):
                    for oy in range(-half, width - half):
                        self.set(x0 + ox, y0 + oy, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy
            n += 1

    def text(self, x: int, y: int, text: str, color: Color, scale: int = 2) -> None:
        """``text`` (upper-cased) with its top left at (x, y)."""
        for k, ch in enumerate(text.upper()):
            rows = _FONT_ROWS.get(ch, _UNKNOWN)
            left = x + k * 4 * scale
            for i, bit in enumerate(rows):
                if bit == "1":
                    cx, cy = left + (i % 3) * scale, y + (i // 3) * scale
                    self.rect(cx, cy, cx + scale - 1, cy + scale - 1, color)

    def png(self) -> bytes:
        return encode_png(self.width, self.height, bytes(self.pixels))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """8-bit RGB pixels (row by row, ``width * height * 3`` bytes) as a PNG file."""
    if len(rgb) != width * height * 3:
        raise ValueError(f"expected {width * height * 3} bytes of RGB, got {len(rgb)}")
    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, truecolour, deflate, no interlace
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    )
