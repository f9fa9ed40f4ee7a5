"""Source-system identifiers, drawn from a seeded generator, vectorized and unique."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

ALNUM = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
LOWER_ALNUM = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
DIGITS = np.frombuffer(b"0123456789", np.uint8)


def _chars(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> np.ndarray:
    return alphabet[rng.integers(0, len(alphabet), size=(n, width))]


def random_ids(
    rng: np.random.Generator,
    n: int,
    prefix: str,
    width: int,
    alphabet: np.ndarray = ALNUM,
    taken: set[str] | None = None,
) -> list[str]:
    """n distinct `prefix + width random chars` (redrawn on the rare collision)."""
    out: list[str] = []
    seen = set() if taken is None else taken
    while len(out) < n:
        need = n - len(out)
        raw = _chars(rng, need, width, alphabet).view(f"S{width}").ravel()
        for b in raw:
            s = prefix + b.decode()
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def sequential_ids(rng: np.random.Generator, n: int, prefix: str, start: int) -> list[str]:
    """Helpdesk-style ids: increasing numbers with small random gaps, 8 digits."""
    nums = start + np.cumsum(rng.integers(1, 4, size=n))
    return [f"{prefix}{x:08d}" for x in nums]


def fixed_width_strings(chars: np.ndarray) -> pa.StringArray:
    """An (n, w) uint8 array of ASCII as an Arrow string array, without a Python loop."""
    chars = np.ascontiguousarray(chars, dtype=np.uint8)
    n, w = chars.shape
    offsets = np.arange(0, n * w + 1, w, dtype=np.int32 if n * w < 2**31 else np.int64)
    typ = pa.string() if offsets.dtype == np.int32 else pa.large_string()
    return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def uuid4_chars(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random UUID4 strings as an (n, 36) uint8 array (version and variant bits set)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.empty((n, 32), np.uint8)
    hexed[:, 0::2] = HEX[raw >> 4]
    hexed[:, 1::2] = HEX[raw & 0x0F]
    out = np.full((n, 36), ord("-"), np.uint8)
    out[:, 0:8] = hexed[:, 0:8]
    out[:, 9:13] = hexed[:, 8:12]
    out[:, 14:18] = hexed[:, 12:16]
    out[:, 19:23] = hexed[:, 16:20]
    out[:, 24:36] = hexed[:, 20:32]
    return out


def hex_chars(rng: np.random.Generator, n: int, prefix: str, width: int) -> np.ndarray:
    """n `prefix + width hex chars` as an (n, len(prefix) + width) uint8 array."""
    p = np.frombuffer(prefix.encode(), np.uint8)
    out = np.empty((n, len(p) + width), np.uint8)
    out[:, : len(p)] = p
    out[:, len(p) :] = HEX[rng.integers(0, 16, size=(n, width))]
    return out
