"""Reasons: the CamelCase words shared by status conditions and events.

One vocabulary, declared once, so a condition's reason and the event emitted on its
transition always agree, and dashboards and alerts can match on them.
"""

from __future__ import annotations

import enum


class ConditionType(enum.StrEnum):
    READY = "Ready"
    SCALING_ACTIVE = "ScalingActive"
    SCALING_LIMITED = "ScalingLimited"
    METRICS_AVAILABLE = "MetricsAvailable"
    SPOT_FALLBACK = "SpotFallback"
    SPEC_VALID = "SpecValid"
    POOLS_READY = "PoolsReady"
    NEAR_LIMIT = "NearLimit"
    EXHAUSTED = "Exhausted"


class Reason(enum.StrEnum):
    # Ready
    AVAILABLE = "Available"
    PROGRESSING = "Progressing"
    UNSERVED = "Unserved"  # work is queued and no replica is wanted to take it
    SCALED_TO_ZERO = "ScaledToZero"
    INVALID_SPEC = "InvalidSpec"
    # Scaling
    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    STEADY = "Steady"
    STABILIZING = "Stabilizing"
    IDLE = "Idle"
    WOKE_FROM_ZERO = "WokeFromZero"
    AT_MAX_REPLICAS = "AtMaxReplicas"
    AT_MIN_REPLICAS = "AtMinReplicas"
    RATE_LIMITED = "RateLimited"  # the model's rate limit keeps no more replicas busy
    WITHIN_BOUNDS = "WithinBounds"
    MANUAL_MODE = "ManualMode"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    METRICS_READ = "MetricsRead"
    # Placement
    SPOT_UNSCHEDULABLE = "SpotUnschedulable"
    SPOT_RECOVERED = "SpotRecovered"
    ON_SPOT = "OnSpot"
    NOT_SPOT = "NotSpot"
    # Workflows
    VALID = "Valid"
    DEPENDENCY_CYCLE = "DependencyCycle"
    MISSING_POOL = "MissingPool"
    SECRET_MISSING = "SecretMissing"  # noqa: S105 - a reason, not a secret
    POOLS_NOT_READY = "PoolsNotReady"
    ALL_POOLS_READY = "AllPoolsReady"
    PUBLISHED = "Published"
    # Budgets
    ENFORCED = "Enforced"
    WITHIN_LIMITS = "WithinLimits"
    WARN_AT_REACHED = "WarnAtReached"
    LIMIT_REACHED = "LimitReached"
