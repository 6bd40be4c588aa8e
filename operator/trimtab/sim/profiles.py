"""Simulator configuration: how each simulated model performs and how often it fails.

Pure types with validated defaults, loadable from a YAML or JSON document, so a demo
or benchmark can describe a fleet of models in one file and tests can build one inline.
"""

from __future__ import annotations

import pathlib
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

# A per-request probability; one model's rates together are at most 1 (one fault per request).
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class ModelProfile(BaseModel):
    """Latency, output length and fault rates of one simulated model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "default"
    ttft_seconds: float = Field(default=0.05, ge=0.0)
    per_token_seconds: float = Field(default=0.002, ge=0.0)
    output_tokens_mean: int = Field(default=60, ge=1)
    output_tokens_jitter: float = Field(default=0.3, ge=0.0, le=1.0)
    # Requests served at full speed at once; past it every request slows down
    # proportionally, as on a saturated model server.
    capacity: int = Field(default=8, ge=1)
    confidence_mean: float = Field(default=0.85, ge=0.0, le=1.0)
    rate_429: Rate = 0.0
    retry_after_seconds: float = Field(default=1.0, ge=0.0)
    rate_500: Rate = 0.0
    rate_timeout: Rate = 0.0
    timeout_hang_seconds: float = Field(default=30.0, ge=0.0)
    rate_malformed: Rate = 0.0
    rate_schema_violation: Rate = 0.0
    # When set, every successful reply's content is exactly this text (drawn values are
    # still drawn, so the random streams stay aligned): for feeding arbitrary output.
    fixed_content: str | None = Field(default=None, max_length=1_000_000)
    # Offered tools, a conversation's first this-many replies call them (one or two
    # calls each, arguments drawn to fit their parameters); later replies answer.
    tool_turns: int = Field(default=1, ge=0, le=32)
    # Faults forced on this model's first requests, in order ("ok": none), before the
    # rates apply: deterministic scenarios such as "malformed twice, then valid".
    script: list[Literal["ok", "429", "500", "timeout", "malformed", "schema_violation"]] = Field(
        default_factory=list, max_length=1000
    )

    @model_validator(mode="after")
    def _rates_are_a_distribution(self) -> ModelProfile:
        total = (
            self.rate_429
            + self.rate_500
            + self.rate_timeout
            + self.rate_malformed
            + self.rate_schema_violation
        )
        if total > 1.0:
            raise ValueError(f"fault rates of model {self.name!r} add up to {total} > 1")
        return self


class SimConfig(BaseModel):
    """A whole simulator: its seed, its named models and the profile for any other name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    models: dict[str, ModelProfile] = Field(default_factory=dict)
    default: ModelProfile = Field(default_factory=ModelProfile)
    tool_delay_seconds: float = Field(default=0.01, ge=0.0)

    def profile_for(self, model: str) -> ModelProfile:
        return self.models.get(model, self.default)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SimConfig:
        """Build from a parsed document; a model's name defaults to its key under `models`."""
        models = {
            key: {"name": key, **(fields or {})}
            for key, fields in (doc.get("models") or {}).items()
        }
        return cls.model_validate({**doc, "models": models})


def load(path: str | pathlib.Path) -> SimConfig:
    """Read a YAML (or JSON, which YAML includes) simulator config file."""
    doc = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a simulator config is a mapping, not {type(doc).__name__}")
    return SimConfig.from_dict(doc)
