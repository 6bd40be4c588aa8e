"""What both kinds' status decisions share: reading the status the apiserver holds into
the API's model, and the merge patch from it to the status wanted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic

M = TypeVar("M", bound=pydantic.BaseModel)


def parse(model: type[M], raw: Mapping[str, Any]) -> M:
    """The status the apiserver holds; one that no longer parses (written by another
    version) counts as empty, and is then rewritten whole."""
    try:
        return model.model_validate(dict(raw))
    except pydantic.ValidationError:
        return model()


def changes(held: Mapping[str, Any], want: pydantic.BaseModel) -> dict[str, Any]:
    """The fields of `want`, as the apiserver would hold them, that differ from `held`."""
    fields = want.model_dump(by_alias=True, mode="json")
    return {k: v for k, v in fields.items() if held.get(k) != v}
