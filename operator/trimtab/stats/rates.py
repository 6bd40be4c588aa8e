"""Event rates over a sliding window, from counts kept in fixed time buckets.

Workers add to one Redis hash field per time bucket (named by the bucket's start, in
whole seconds) and the operator sums the fields of the last window. Both sides name
the buckets with `window_keys`, so they agree on which buckets a window holds: the
bucket starts in (now - window, now].
"""

from __future__ import annotations

import math


def window_keys(now: float, *, bucket_seconds: int, window_seconds: int) -> list[int]:
    """Start timestamps (oldest first) of the buckets that make up the last window."""
    if bucket_seconds <= 0 or window_seconds < bucket_seconds:
        raise ValueError(
            "bucket_seconds must be positive and window_seconds at least one bucket, got "
            f"{bucket_seconds} and {window_seconds}"
        )
    last = math.floor(now / bucket_seconds) * bucket_seconds
    first = (math.floor((now - window_seconds) / bucket_seconds) + 1) * bucket_seconds
    return list(range(first, last + 1, bucket_seconds))
