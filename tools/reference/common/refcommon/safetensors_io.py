"""safetensors I/O, hand written (no `safetensors` package).

Format: 8-byte little-endian u64 header length, UTF-8 JSON header padded with spaces to a multiple of 8,
raw little-endian tensor data in sorted-name order.
"""

from __future__ import annotations

import json
import struct
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

_ST_DTYPES = {
    torch.float32: ("F32", 4),
    torch.float16: ("F16", 2),
    torch.bfloat16: ("BF16", 2),
    torch.int64: ("I64", 8),
    torch.int32: ("I32", 4),
    torch.uint8: ("U8", 1),
}
_NP_TYPES = {"F16": "<f2", "F32": "<f4", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        # numpy has no bf16: reinterpret the 16-bit pattern.
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.dtype == torch.float16:
        return t.numpy().astype("<f2").tobytes()
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    if t.dtype == torch.int64:
        return t.numpy().astype("<i8").tobytes()
    if t.dtype == torch.int32:
        return t.numpy().astype("<i4").tobytes()
    if t.dtype == torch.uint8:
        return t.numpy().tobytes()
    raise TypeError(f"unsupported dtype {t.dtype}")


def save_safetensors(path: str, tensors: Dict[str, torch.Tensor],
                     metadata: Optional[Dict[str, str]] = None) -> None:
    """Write a .safetensors file: u64 LE header size, JSON header padded with spaces to a
    multiple of 8, raw little-endian data in sorted-name order."""
    header: Dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
    blobs: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        dt, _ = _ST_DTYPES[t.dtype]
        b = _tensor_bytes(t)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Read a .safetensors file; tensors keep their stored dtype.  Returns (tensors, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    meta = header.pop("__metadata__", {})
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        s, e = info["data_offsets"]
        raw = data[base + s:base + e]
        dt = info["dtype"]
        if dt == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
        elif dt in _NP_TYPES:
            t = torch.from_numpy(np.frombuffer(raw, dtype=_NP_TYPES[dt]).copy())
        else:
            raise TypeError(dt)
        out[name] = t.reshape(info["shape"])
    return out, meta


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, same shape and the same bits (bf16 compared through its int16 pattern)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.bfloat16:
        return torch.equal(a.view(torch.int16), b.view(torch.int16))
    return torch.equal(a, b)
