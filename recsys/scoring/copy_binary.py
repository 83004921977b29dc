"""Encode rows for PostgreSQL's binary COPY with numpy, in one vectorised pass.

psycopg's ``write_row`` adapts one Python value at a time, which would cost more than
scoring the model (docs/ARCHITECTURE.md, "Precompute speed"). Every column of a ranked-scores row has a
fixed width within one batch, so a numpy structured array *is* the binary COPY tuple
layout, and filling it costs a few array assignments.
"""

from __future__ import annotations

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
NULL = -1

# (name, numpy type) in table column order; "S" is a fixed-width text column.
_TYPES = {"int8": ">i8", "int4": ">i4", "float4": ">f4", "bool": "u1"}


def encode(columns: list[tuple[str, str, np.ndarray | bytes | None]], rows: int) -> bytes:
    """Binary COPY payload (header, tuples, trailer) for ``rows`` rows.

    Each column is ``(name, pg_type, values)`` where values is an array of length
    ``rows``, a scalar broadcast to every row, ``bytes`` for a constant text column,
    or ``None`` for a column that is NULL in every row of this batch.
    """
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for name, pg_type, values in columns:
        fields.append((f"{name}_len", ">i4"))
        if values is None:
            continue
        if pg_type == "text":
            fields.append((name, f"S{len(values)}"))
        else:
            fields.append((name, _TYPES[pg_type]))
    out = np.empty(rows, dtype=np.dtype(fields))
    out["count"] = len(columns)
    for name, pg_type, values in columns:
        if values is None:
            out[f"{name}_len"] = NULL
            continue
        out[f"{name}_len"] = len(values) if pg_type == "text" else out.dtype[name].itemsize
        out[name] = values
    return HEADER + out.tobytes() + TRAILER
