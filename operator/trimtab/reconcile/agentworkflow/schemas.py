"""Checking values against a workflow's JSON Schemas (step outputs, tool arguments, run
inputs), with each schema compiled once: workers and SDK clients keep a workflow
generation, and so its schema objects, for as long as they use it.

The schemas were checked as JSON Schemas when the workflow was admitted (validation,
agent_checks), so compiling one here does not fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

# Compiled validators by schema object. The entry holds the schema itself, so its id
# cannot be reused while it is cached.
_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}
_VALIDATORS_MAX = 512


def validator(schema: Mapping[str, Any]) -> Any:
    """The compiled validator of `schema`, compiled once per schema object."""
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    if len(_VALIDATORS) >= _VALIDATORS_MAX:
        _VALIDATORS.clear()
    compiled = jsonschema.validators.validator_for(schema)(schema)
    _VALIDATORS[id(schema)] = (schema, compiled)
    return compiled


def first_error(schema: Mapping[str, Any], value: Any) -> jsonschema.ValidationError | None:
    """The most relevant way `value` fails `schema`, or None when it fits."""
    found: jsonschema.ValidationError | None = jsonschema.exceptions.best_match(
        validator(schema).iter_errors(value)
    )
    return found
