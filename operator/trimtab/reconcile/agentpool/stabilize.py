"""The HPA-style stabilization windows: recommendations are kept for a window; scaling
up takes the smallest of the up window, scaling down the largest of the down window,
so a lower count must persist the whole window before it is applied.

The recommendations are computed from smoothed inputs (trimtab.reconcile.agentpool.need),
so the down window holds the pool's recent need, not the peak of per-second noise.
"""

from __future__ import annotations

from trimtab.api.v1alpha1.agentpool import ScalingSpec, Stabilization

Recommendations = tuple[tuple[float, int], ...]


def record(
    recs: Recommendations, now: float, *, current: int, raw: int, spec: ScalingSpec
) -> Recommendations:
    """Add this recommendation. With nothing remembered, the current count stands for the
    past before a scale-down (the HPA seeds it too), so a restart can't skip the window."""
    kept = prune(recs, now, windows=spec.stabilization)
    # Only a history that never held anything is a restart; one the window merely emptied
    # (ticks slower than a short window) must not be re-seeded, or it would never go down.
    if not recs and raw < current and spec.stabilization.scale_down_seconds > 0:
        kept = ((now, current),)
    return (*kept, (now, raw))


def prune(recs: Recommendations, now: float, *, windows: Stabilization) -> Recommendations:
    """Recommendations inside the longest window; later ones mean the clock went back."""
    oldest = now - max(windows.scale_up_seconds, windows.scale_down_seconds)
    return tuple((t, r) for t, r in recs if oldest <= t <= now)


def stabilized(recs: Recommendations, now: float, *, current: int, windows: Stabilization) -> int:
    """Up to the up window's minimum, or down to the down window's maximum."""
    up = min(_window(recs, now, windows.scale_up_seconds))
    down = max(_window(recs, now, windows.scale_down_seconds))
    return up if up > current else min(down, current)


def _window(recs: Recommendations, now: float, seconds: int) -> list[int]:
    """The newest recommendation (the last) and the others of the past `seconds`; a 0 s
    window is the newest alone, even beside an older one of the same instant."""
    *past, (_, newest) = recs
    return [r for t, r in past if seconds > 0 and t >= now - seconds] + [newest]
