"""Rates from stress result lines: per operation kind, and across repeated runs.

A result line gives counts (`<kind>_ops=N`), `elapsed_ms` and the overall
`ops_per_s`. `summarize` turns one or more lines of the same test into case
properties:

- `<kind>_ops_per_s` for every kind (of the last run);
- with several runs: `repeats`, and for `ops_per_s` and every
  `<kind>_ops_per_s` its `_median` and `_spread` (max - min, same unit),
  plus `ops_per_s_runs` (every run's rate, comma-separated, in order).
"""

from __future__ import annotations

import contextlib
import statistics

Fields = dict[str, str]


def rates(fields: Fields) -> dict[str, float]:
    """ops_per_s and each <kind>_ops_per_s of one result line."""
    try:
        elapsed = int(fields.get("elapsed_ms", "0"))
    except ValueError:
        elapsed = 0
    out: dict[str, float] = {}
    if "ops_per_s" in fields:
        with contextlib.suppress(ValueError):
            out["ops_per_s"] = float(fields["ops_per_s"])
    if elapsed <= 0:
        return out
    for key, value in fields.items():
        if key.endswith("_ops") and key != "bogo_ops" and value.isdigit():
            out[f"{key}_per_s"] = int(value) * 1000 / elapsed
    return out


def summarize(results: list[Fields]) -> dict[str, str]:
    """Properties for a case from all its result lines (see the module doc)."""
    if not results:
        return {}
    per_run = [rates(f) for f in results]
    props = {k: f"{v:.1f}" for k, v in per_run[-1].items() if k != "ops_per_s"}
    if len(results) == 1:
        return props
    props["repeats"] = str(len(results))
    keys = sorted({k for r in per_run for k in r})
    for key in keys:
        values = [r[key] for r in per_run if key in r]
        props[f"{key}_median"] = f"{statistics.median(values):.1f}"
        props[f"{key}_spread"] = f"{max(values) - min(values):.1f}"
    props["ops_per_s_runs"] = ",".join(f"{r.get('ops_per_s', 0.0):.1f}" for r in per_run)
    return props
