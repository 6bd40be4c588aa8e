"""What is wrong with a workflow's agent tools that CEL cannot see: parameters that
are not a JSON Schema of an object (the model is shown them, and its arguments are
checked against them), and call templates that name anything but `inputs` and `args`
(a tool is declared once for every agent step that lists it, so it cannot see one
step's dependencies)."""

from __future__ import annotations

from collections.abc import Iterator

import jsonschema
import jsonschema.exceptions

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import dag, templates, tool_requests

VISIBLE = frozenset({"inputs", "args"})


def problems(spec: awf.AgentWorkflowSpec) -> Iterator[dag.Problem]:
    for j, tool in enumerate(spec.tools):
        path = f"spec.tools[{j}]"
        yield from _parameter_problems(path, tool)
        yield from _template_problems(f"{path}.call", tool.call)


def _parameter_problems(path: str, tool: awf.AgentTool) -> Iterator[dag.Problem]:
    try:
        jsonschema.validators.validator_for(tool.parameters).check_schema(tool.parameters)
    except jsonschema.exceptions.SchemaError as exc:
        yield dag.Problem(f"{path}.parameters", f"not a valid JSON Schema: {exc.message}")
        return
    if tool.parameters.get("type") != "object":
        yield dag.Problem(f"{path}.parameters", "a tool's parameters must be type: object")


def _template_problems(path: str, call: awf.ToolCall) -> Iterator[dag.Problem]:
    fields = [("url", call.url), ("body", call.body)]
    fields += [(f"headers[{k}].value", h.value) for k, h in enumerate(call.headers)]
    for field, template in fields:
        if template is None:
            continue
        try:
            refs = templates.references(template)
        except templates.TemplateError as exc:
            yield dag.Problem(f"{path}.{field}", str(exc))
            continue
        for name in sorted({ref.parts[0] for ref in refs} - VISIBLE):
            yield dag.Problem(
                f"{path}.{field}",
                f"'{name}' is not visible here: an agent tool's templates see inputs and "
                "args (the model's arguments)",
            )
    if problem := tool_requests.body_problem(call):
        yield dag.Problem(f"{path}.body", problem)
    for k, header in enumerate(call.headers):
        if problem := tool_requests.header_problem(header):
            yield dag.Problem(f"{path}.headers[{k}].value", problem)
