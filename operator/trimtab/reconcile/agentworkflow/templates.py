r"""Prompt and body templates: `{{ path }}` substitution and nothing else.

Templates come from AgentWorkflow specs, which many people can write, and their values
come from run inputs and model outputs, which anyone can influence; so a template can
only look values up, never call, filter or evaluate. A path is dotted names with
optional integer indexes (`inputs.message`, `history.tickets.0.title`); lookups go
through mappings and lists only, never attributes. Strings are inserted as they are,
other values as compact JSON. A literal `{{` is written `\{{`. Rendering is one pass,
so a substituted value containing `{{` is never rendered again.

This module owns the syntax and text rendering (prompts); `tool_requests` renders the
same templates into a JSON body or a URL, where a value must not change the structure.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4

# Escape first, then a closed placeholder, then an unclosed one (always an error).
_TOKEN = re.compile(r"\\\{\{|\{\{(?P<expr>.*?)\}\}|\{\{", re.DOTALL)
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.(?:[A-Za-z_][A-Za-z0-9_-]*|[0-9]+))*")


class TemplateError(ValueError):
    """A template that is malformed or refers to a value the context does not have."""


@dataclass(frozen=True)
class Ref:
    """One placeholder: the dotted path it looks up."""

    path: str

    @property
    def parts(self) -> list[str]:
        return self.path.split(".")


# A worker renders the same few templates on every attempt: parse each once.
@functools.lru_cache(maxsize=1024)
def parse(template: str) -> tuple[str | Ref, ...]:
    """The template's literal text and placeholders, in order; raises TemplateError."""
    pieces: list[str | Ref] = []
    position = 0
    for match in _TOKEN.finditer(template):
        pieces.append(template[position : match.start()])
        position = match.end()
        text = match.group(0)
        if text == "\\{{":
            pieces.append("{{")
        elif text == "{{":
            raise TemplateError(f"unclosed '{{{{' at offset {match.start()}")
        else:
            pieces.append(_ref(match.group("expr"), offset=match.start()))
    pieces.append(template[position:])
    return tuple(pieces)


def _ref(expr: str, *, offset: int) -> Ref:
    path = expr.strip()
    if not _PATH.fullmatch(path):
        raise TemplateError(
            f"invalid placeholder {{{{{expr}}}}} at offset {offset}: "
            "expected a dotted path such as 'inputs.message' or 'history.tickets.0.title'"
        )
    return Ref(path)


def render(
    template: str, context: Mapping[str, Any], *, max_value_tokens: int | None = None
) -> str:
    """The template with every `{{ path }}` replaced by its value in `context`; with
    `max_value_tokens`, each value is pruned to about that many tokens (`pruned`), so a
    long conversation cannot blow a step's budget."""

    def value(ref: Ref) -> str:
        found = lookup(ref, context)
        text = text_of(found, ref)
        if max_value_tokens is None or estimate_tokens(text) <= max_value_tokens:
            return text
        return pruned(found, text, max_value_tokens)

    return "".join(piece if isinstance(piece, str) else value(piece) for piece in parse(template))


def lookup(ref: Ref, context: Mapping[str, Any]) -> Any:
    value: Any = context
    for depth, part in enumerate(ref.parts):
        found, value = _step(value, part)
        if not found:
            where = ".".join(ref.parts[:depth]) or "the context"
            available = ", ".join(sorted(str(name) for name in context)) or "(none)"
            raise TemplateError(
                f"template refers to '{ref.path}', but '{part}' is not in {where}; "
                f"available names: {available}"
            )
    return value


def _step(value: Any, part: str) -> tuple[bool, Any]:
    if isinstance(value, Mapping):
        return (True, value[part]) if part in value else (False, None)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes) and part.isdigit():
        index = int(part)
        return (True, value[index]) if index < len(value) else (False, None)
    return False, None


def text_of(value: Any, ref: Ref) -> str:
    """A looked-up value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"'{ref.path}' is not JSON: {exc}") from exc


def references(template: str) -> list[Ref]:
    """The placeholders of `template`; raises TemplateError when it is malformed."""
    return [piece for piece in parse(template) if isinstance(piece, Ref)]


def estimate_tokens(text: str) -> int:
    """About how many tokens `text` is (four characters each), for budget projections."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def truncate_tokens(text: str, max_tokens: int) -> str:
    """At most about `max_tokens` tokens of `text`, marked when something was cut."""
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... truncated to {max_tokens} tokens]"


def pruned(value: Any, text: str, max_tokens: int) -> str:
    """A value over `max_tokens`, cut to fit without breaking its JSON: a list keeps
    its most recent items (the end of a history, not its start), an object its first
    fields, each whole and after a line saying what was left out; text, or a value
    whose one item is already too long, keeps its start."""
    budget = max(0, max_tokens - MARKER_TOKENS)
    items: list[Any] | None = None
    if isinstance(value, list):
        items = value
    elif isinstance(value, Mapping):
        items = list(value.items())
    kept = _fitting(items, budget, isinstance(value, list)) if items else None
    if kept is None:
        return truncate_tokens(text, max_tokens)
    shown, count = kept
    what = "earlier items" if isinstance(value, list) else "fields"
    return f"[... {len(items or []) - count} {what} left out to fit {max_tokens} tokens]\n{shown}"


MARKER_TOKENS = 16  # the marker line's own share of the budget


def _fitting(items: list[Any], budget: int, from_end: bool) -> tuple[str, int] | None:
    """The most items (the last ones of a list, the first of an object's fields) whose
    JSON fits `budget`, and how many; None when not even one fits. Each item is
    measured once, so a long history costs one pass."""
    order = list(reversed(items)) if from_end else items
    limit = budget * CHARS_PER_TOKEN
    used, count = 2, 0  # the brackets
    for item in order:
        # An item as it appears in the JSON: a list's value, or an object's "key":value.
        piece = _compact(item) if from_end else f"{_compact(item[0])}:{_compact(item[1])}"
        size = len(piece) + (1 if count else 0)  # and its comma
        if used + size > limit:
            break
        used, count = used + size, count + 1
    if count == 0:
        return None
    chosen = order[:count]
    doc: Any = list(reversed(chosen)) if from_end else dict(chosen)
    return _compact(doc), count


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
