"""A tool step's HTTP request, rendered so that no value can change its shape.

A tool's URL, header values and body are templates over run inputs and dependency
outputs, which whoever submits a run controls. Rendered as plain text, an input such as
`c1", "limit": 100000, "customerId": "victim` rewrites a JSON body, and `../admin` or
`x?role=admin` a URL. So each value is inserted where it stands:
- in a JSON body (the default, and any `Content-Type` naming json), a placeholder inside
  a string becomes part of that string, escaped; a bare placeholder becomes one JSON
  value (an object stays an object);
- in a form body (`application/x-www-form-urlencoded`), each value is percent-encoded;
- in a URL, each value is percent-encoded whole (a `/` included), a rendered `.` or `..`
  path segment is refused (values can add up to one), and the scheme, host and port are
  never templated (the API's URL pattern allows no placeholder before the path), so a
  run cannot steer a call to another host or up its path;
- in a header, a value cannot hold a line break; Content-Type cannot be templated, since
  it decides how the body is rendered.
Any other `Content-Type` gets the body as plain text, which is the author's choice.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import templates
from trimtab.reconcile.agentworkflow.secrets import SecretKey
from trimtab.reconcile.agentworkflow.templates import TemplateError

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# Placeholders stand in the JSON skeleton as private-use markers, which a template may
# not contain itself: `v` marks a bare placeholder (a whole JSON value).
_MARK = "\ue000"
_SLOT = re.compile(f"{_MARK}(v?)([0-9]+){_MARK}")
_HEADER_BREAKS = re.compile(r"[\r\n\x00]")


@dataclasses.dataclass(frozen=True)
class Request:
    """What a worker sends: everything rendered, Secrets resolved."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None


def content_type(tool: awf.ToolCall) -> str:
    """The body's media type: the literal Content-Type header's, else JSON."""
    for header in tool.headers:
        if header.name.lower() == "content-type" and header.value is not None:
            return header.value.split(";")[0].strip().lower()
    return JSON


def _is_json(media_type: str) -> bool:
    return media_type == JSON or media_type.endswith("+json")


@dataclasses.dataclass(frozen=True)
class _JsonTemplate:
    tree: Any
    refs: tuple[templates.Ref, ...]


@functools.lru_cache(maxsize=512)
def _json_template(template: str) -> _JsonTemplate:
    pieces = templates.parse(template)
    refs: list[templates.Ref] = []
    text: list[str] = []
    in_string = escaped = False
    for piece in pieces:
        if isinstance(piece, templates.Ref):
            if escaped:
                raise TemplateError("a placeholder cannot follow a backslash in a JSON string")
            slot = f"{_MARK}{len(refs)}{_MARK}" if in_string else f'"{_MARK}v{len(refs)}{_MARK}"'
            refs.append(piece)
            text.append(slot)
            continue
        if _MARK in piece:
            raise TemplateError("a JSON body template cannot contain the character U+E000")
        for char in piece:
            if escaped:
                escaped = False
            elif in_string and char == "\\":
                escaped = True
            elif char == '"':
                in_string = not in_string
        text.append(piece)
    try:
        tree = json.loads("".join(text), object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"the body is not a JSON template ({exc.msg}); put a placeholder where a JSON "
            'value goes ({{ inputs.items }}) or inside a string ("{{ inputs.id }}")'
        ) from None
    return _JsonTemplate(tree, tuple(refs))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TemplateError(f"the body repeats the key {key!r}")
        out[key] = value
    return out


def _filled(node: Any, values: list[Any], texts: list[str], *, key: bool = False) -> Any:
    if isinstance(node, str):
        whole = _SLOT.fullmatch(node)
        if whole and whole.group(1) and not key:
            return values[int(whole.group(2))]
        return _SLOT.sub(lambda m: texts[int(m.group(2))], node)
    if isinstance(node, dict):
        # A key a value filled in may not replace another key (a run input naming "role").
        return _unique_keys(
            [
                (_filled(k, values, texts, key=True), _filled(v, values, texts))
                for k, v in node.items()
            ]
        )
    if isinstance(node, list):
        return [_filled(item, values, texts) for item in node]
    return node


def render_json(template: str, context: Mapping[str, Any]) -> str:
    """The JSON body `template` with each value inserted as JSON, never as syntax."""
    parsed = _json_template(template)
    values = [templates.lookup(ref, context) for ref in parsed.refs]
    texts = [templates.text_of(value, ref) for value, ref in zip(values, parsed.refs, strict=True)]
    return json.dumps(
        _filled(parsed.tree, values, texts), separators=(",", ":"), ensure_ascii=False
    )


def _encoded(template: str, context: Mapping[str, Any], *, form: bool) -> str:
    out: list[str] = []
    for piece in templates.parse(template):
        if isinstance(piece, str):
            out.append(piece)
            continue
        text = templates.text_of(templates.lookup(piece, context), piece)
        out.append(urllib.parse.quote_plus(text) if form else urllib.parse.quote(text, safe=""))
    return "".join(out)


def render_url(template: str, context: Mapping[str, Any]) -> str:
    """The URL `template` with each value percent-encoded, its origin untouched; a path
    segment that renders (or decodes) to `.` or `..` is refused, as HTTP clients and
    servers would resolve it."""
    url = _encoded(template, context, form=False)
    path = urllib.parse.urlsplit(url).path
    if any(urllib.parse.unquote(seg) in {".", ".."} for seg in path.split("/")):
        raise TemplateError(f"the rendered URL path {path!r} has a '.' or '..' segment")
    return url


def render_header(template: str, context: Mapping[str, Any]) -> str:
    value = templates.render(template, context)
    if _HEADER_BREAKS.search(value):
        raise TemplateError("a header value cannot contain a line break or NUL")
    return value


def render_body(tool: awf.ToolCall, context: Mapping[str, Any]) -> str | None:
    if tool.body is None:
        return None
    media_type = content_type(tool)
    if _is_json(media_type):
        return render_json(tool.body, context)
    if media_type == FORM:
        return _encoded(tool.body, context, form=True)
    return templates.render(tool.body, context)


def request(
    tool: awf.ToolCall, context: Mapping[str, Any], secrets: Mapping[SecretKey, str]
) -> Request:
    """The request `tool` sends for `context`; `secrets` holds the header Secrets' values.
    Raises TemplateError (a value it lacks, a value a URL or header cannot take) or
    KeyError (a Secret key not in `secrets`)."""
    headers = {"Content-Type": JSON}
    for header in tool.headers:
        # Names are case-insensitive: the author's replaces the default, never joins it.
        for same in [n for n in headers if n.lower() == header.name.lower()]:
            del headers[same]
        if header.value is not None:
            headers[header.name] = render_header(header.value, context)
        elif header.value_from_secret is not None:
            ref = header.value_from_secret
            headers[header.name] = secrets[(ref.name, ref.key)]
    return Request(tool.method, render_url(tool.url, context), headers, render_body(tool, context))


def header_problem(header: awf.Header) -> str | None:
    """Why a header cannot be sent as written, or None."""
    if header.name.lower() == "content-type" and header.value and "{{" in header.value:
        return "Content-Type cannot be a template: it decides how the body is rendered"
    return None


def body_problem(tool: awf.ToolCall) -> str | None:
    """Why the tool's body template cannot be rendered as its content type, or None."""
    if tool.body is None or not _is_json(content_type(tool)):
        return None
    try:
        _json_template(tool.body)
    except TemplateError as exc:
        return str(exc)
    return None


def origin(url: str) -> str:
    """`scheme://host[:port]` of a (template) URL, which placeholders never reach."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
