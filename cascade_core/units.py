"""Sizes for people: bytes in decimal units, as file browsers and the hub show them."""
from __future__ import annotations


def format_bytes(n: float) -> str:
    """1234 → '1.2 kB', 7_180_000_000 → '7.18 GB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.2f} {unit}" if unit == "GB" else f"{value:.1f} {unit}"
    return f"{int(n)} B"
