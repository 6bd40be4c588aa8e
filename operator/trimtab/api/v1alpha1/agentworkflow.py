"""AgentWorkflow: a DAG of model, tool and agent steps, each bound to an AgentPool.

Step names are identifiers (lowercase letters, digits, underscores) because prompts,
routes and schemas refer to a dependency's output by its step name, as in the CEL
route `intent.complexity == 'high'`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from trimtab.api.v1alpha1 import base

Field = pydantic.Field

STEP_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
STEP_NAME_MAX = 63
MAX_STEPS = 50
MAX_DEPENDS_ON = 16
MAX_ROUTES = 8
TEMPLATE_MAX = 32768
CEL_MAX = 1024

# A tool URL may hold placeholders in its path, query and fragment, never before them:
# the scheme, host and port are literal, so no run input can pick the host.
TOOL_URL_PATTERN = r"^https?://[^\s/?#{}]+([/?#]([^\s{}]|\{\{[^{}]*\}\})*)?$"
ToolUrl = Annotated[str, Field(min_length=1, max_length=base.URL_MAX, pattern=TOOL_URL_PATTERN)]

StepName = Annotated[str, Field(min_length=1, max_length=STEP_NAME_MAX, pattern=STEP_NAME_PATTERN)]


class Backoff(base.Model):
    """Exponential backoff with jitter between attempts."""

    CEL = (
        base.CelRule(
            rule="self.initialSeconds <= self.maxSeconds",
            message="retry.backoff.initialSeconds must not exceed retry.backoff.maxSeconds",
            check=lambda b: b.initial_seconds <= b.max_seconds,
        ),
    )

    initial_seconds: float = Field(default=1.0, gt=0, le=3600)
    factor: float = Field(default=2.0, ge=1, le=10)
    max_seconds: float = Field(default=60.0, gt=0, le=86400)
    jitter: float = Field(default=0.2, ge=0, le=1, description="Random share of each delay.")
    max_retry_after_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="The longest wait a server's Retry-After may ask for; longer asks wait "
        "this long.",
    )


class RetryPolicy(base.Model):
    """How often a failed step (error, timeout, invalid output) is tried again."""

    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts in all, first included."
    )
    backoff: Backoff = Field(default_factory=Backoff)


class MinConfidence(base.Model):
    """Route a valid output to human review when its confidence is below a threshold."""

    field: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        description="Dotted path of the confidence in the output.",
    )
    threshold: float = Field(ge=0, le=1)


class OutputSpec(base.Model):
    """What a step's output must look like."""

    json_schema: base.FreeForm | None = Field(
        default=None, alias="schema", description="JSON Schema the step's output must satisfy."
    )
    min_confidence: MinConfidence | None = None


class Fallback(base.Model):
    """Where a step goes when its retries are spent."""

    CEL = (
        base.CelRule(
            rule="has(self.pool) || self.humanReview",
            message="fallback needs a pool or humanReview: true",
            check=lambda f: f.pool is not None or f.human_review,
        ),
    )

    pool: base.Name | None = Field(
        default=None, description="Pool to escalate to, often a larger model."
    )
    human_review: bool = Field(
        default=False,
        description="Send to human review after the fallback pool fails too (or instead of one).",
    )


class Route(base.Model):
    """One choice of pool: taken when `when` holds; the last route has no `when`."""

    when: str | None = Field(
        default=None,
        min_length=1,
        max_length=CEL_MAX,
        description="CEL over `inputs` and the outputs of the step's dependencies.",
    )
    pool: base.Name


class Header(base.Model):
    """An HTTP header of a tool call, literal or from a Secret."""

    CEL = (
        base.CelRule(
            rule="has(self.value) != has(self.valueFromSecret)",
            message="a header takes exactly one of value and valueFromSecret",
            check=lambda h: (h.value is None) != (h.value_from_secret is None),
        ),
    )

    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9-]+$")
    value: str | None = Field(
        default=None,
        max_length=8192,
        description="A template over inputs and dependency outputs; a rendered value "
        "holding a line break fails the step.",
    )
    value_from_secret: base.SecretKeyRef | None = Field(
        default=None,
        description="A Secret key in the workflow's namespace. The operator mounts it "
        "(optional, so a missing Secret fails only the steps that read it) in the workers "
        "of every pool the step may run on, as a reference the kubelet resolves.",
    )


class ToolCall(base.Model):
    """An HTTP tool the step calls."""

    url: ToolUrl = Field(
        description="A template whose values are percent-encoded (a path segment that "
        "renders to '.' or '..' fails the step); placeholders may appear only after the "
        "host, as in "
        "`https://crm.corp/v1/customers/{{ inputs.id }}`. The operator's "
        "`security.allowedToolUrls`, when set, must cover it.",
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: list[Header] = Field(default_factory=list, max_length=16)
    body: str | None = Field(
        default=None,
        max_length=TEMPLATE_MAX,
        description="Body template over inputs and dependency outputs. With a JSON "
        "Content-Type (the default) it must be JSON where a placeholder stands for a value "
        '(`{"items": {{ inputs.items }}}`) or for text in a string (`"{{ inputs.id }}"`); '
        "a value is always inserted escaped, never as syntax. A form body percent-encodes "
        "each value; any other Content-Type gets plain text.",
    )


class CacheSpec(base.Model):
    """Exact-match response cache for this step."""

    ttl_seconds: int = Field(ge=1, le=30 * 86400)


MAX_AGENT_TOOLS = 32
TOOL_NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_-]*$"


class AgentTool(base.Model):
    """An HTTP tool agent steps may call: the model sees its name, description and
    parameters, and decides when to call it and with what arguments."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=TOOL_NAME_PATTERN,
        description="The name the model calls it by.",
    )
    description: str = Field(
        min_length=1, max_length=4096, description="What the tool does, for the model."
    )
    parameters: base.FreeForm = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of its arguments (an object). A call whose arguments do "
        "not fit is not made: the model is told why, and the call counts against the "
        "step's agent.maxInvalidToolCalls.",
    )
    call: ToolCall = Field(
        description="The HTTP call. Its templates see `inputs` and `args` (the model's "
        "arguments, as in `{{ args.order_id }}`); values are inserted escaped, as in any "
        "tool call, so arguments cannot change the request's shape or its host.",
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)


class MemorySpec(base.Model):
    """What a model or agent step remembers of its run's session (a run submitted with
    a session id): the session's earlier turns, most recent first, within maxTokens."""

    session: bool = Field(
        default=False,
        description="See the session's earlier turns (as messages before the prompt), "
        "and add this step's (its prompt and its answer) once the run succeeds. A new or "
        "expired session is empty; a session lives spec.state.ttlSeconds from its last "
        "run.",
    )
    max_tokens: int = Field(
        default=2000,
        ge=1,
        le=1_000_000,
        description="The most of the session the step sees: its most recent whole turns "
        "that fit, older ones left out.",
    )


class AgentSpec(base.Model):
    """How an agent step loops: each turn the model answers or calls tools, whose
    results go back to it, until it answers or its turns run out."""

    tools: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=MAX_AGENT_TOOLS,
        description="Names of spec.tools this step may call (its allow-list); a call of "
        "any other is refused and counted as invalid.",
    )
    max_turns: int = Field(
        default=8,
        ge=1,
        le=32,
        description="Model calls at most. The last is offered no tools, so the step "
        "always ends with an answer (or fails).",
    )
    max_invalid_tool_calls: int = Field(
        default=3,
        ge=0,
        le=32,
        description="Tool calls the model may get wrong (an unknown tool, arguments that "
        "are not JSON or do not fit the tool's parameters) before the step fails, not "
        "retried.",
    )
    max_parallel_tool_calls: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Tool calls of one turn made at once; more in one turn are refused "
        "to the model as invalid.",
    )


def _last_route_is_default(routes: list[Route]) -> bool:
    defaults = [r for r in routes if r.when is None]
    return len(defaults) == 1 and routes[-1].when is None


class OnFailure(base.Model):
    """What the run goes on with when a step gives up."""

    output: base.AnyJSON = Field(
        description="The step's output once it gives up (retries, fallback and review "
        "spent; its budget exhausted): the step is done with this instead of failing "
        "the run, and its error still says why. Must fit output.schema.",
    )


class Step(base.Model):
    """One node of the DAG: a model call or an HTTP tool call."""

    CEL = (
        base.CelRule(
            rule="!has(self.dependsOn) || !(self.name in self.dependsOn)",
            message="a step cannot depend on itself",
            check=lambda s: s.name not in s.depends_on,
        ),
        base.CelRule(
            rule="!has(self.optionalDependencies) || self.optionalDependencies.all(d, "
            "has(self.dependsOn) && d in self.dependsOn)",
            message="optionalDependencies must each be in dependsOn",
            check=lambda s: set(s.optional_dependencies) <= set(s.depends_on),
        ),
        base.CelRule(
            rule="!(has(self.pool) && has(self.routes))",
            message="set either pool or routes, not both",
            check=lambda s: not (s.pool is not None and s.routes is not None),
        ),
        base.CelRule(
            rule="self.kind == 'tool' ? (has(self.tool) && !has(self.prompt)) "
            ": (has(self.prompt) && !has(self.tool))",
            message="a model or agent step needs prompt (and no tool); a tool step needs "
            "tool (and no prompt)",
            check=lambda s: (
                (s.tool is not None and s.prompt is None)
                if s.kind == "tool"
                else (s.prompt is not None and s.tool is None)
            ),
        ),
        base.CelRule(
            rule="!has(self.memory) || self.kind != 'tool'",
            message="memory needs a model or agent step",
            check=lambda s: s.memory is None or s.kind != "tool",
        ),
        base.CelRule(
            rule="has(self.agent) == (self.kind == 'agent')",
            message="an agent step needs agent (and only an agent step takes it)",
            check=lambda s: (s.agent is not None) == (s.kind == "agent"),
        ),
        base.CelRule(
            rule="!has(self.stream) || !self.stream || self.kind != 'tool'",
            message="stream: true needs a model or agent step (a tool's reply is not streamed)",
            check=lambda s: not s.stream or s.kind != "tool",
        ),
        base.CelRule(
            rule="!has(self.fallback) || !has(self.fallback.pool) || !has(self.pool) "
            "|| self.fallback.pool != self.pool",
            message="fallback.pool must differ from the step's pool",
            check=lambda s: (
                s.fallback is None
                or s.fallback.pool is None
                or s.pool is None
                or s.fallback.pool != s.pool
            ),
        ),
        base.CelRule(
            rule="!has(self.routes) || (self.routes.exists_one(r, !has(r.when)) "
            "&& !has(self.routes[size(self.routes) - 1].when))",
            message="routes: every route but the last needs `when`; the last must have none",
            check=lambda s: s.routes is None or _last_route_is_default(s.routes),
        ),
    )

    name: StepName = Field(
        description="Identifier of the step; its output is visible to dependents under this name."
    )
    kind: Literal["model", "tool", "agent"] = Field(
        default="model",
        description="model: one model call. tool: one HTTP call. agent: a model that "
        "calls the workflow's tools (agent.tools) turn by turn until it answers; every "
        "completed turn is kept with the run, so a retry or another worker goes on from "
        "the last one without calling its tools again.",
    )
    pool: base.Name | None = Field(
        default=None,
        description="AgentPool (same namespace) that runs the step; defaults to spec.defaultPool.",
    )
    routes: list[Route] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ROUTES,
        description="Choose the pool when the step is ready.",
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=TEMPLATE_MAX,
        description="Prompt template over inputs and dependency outputs.",
    )
    system: str | None = Field(default=None, max_length=TEMPLATE_MAX)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    tool: ToolCall | None = None
    agent: AgentSpec | None = None
    memory: MemorySpec | None = None
    depends_on: list[StepName] = Field(default_factory=list, max_length=MAX_DEPENDS_ON)
    optional_dependencies: list[StepName] = Field(
        default_factory=list,
        max_length=MAX_DEPENDS_ON,
        description="Of dependsOn, those this step can do without: when one gives up and "
        "every step depending on it lists it here, it is done with output null (its "
        "error says why) and the run goes on.",
    )
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    output: OutputSpec | None = None
    fallback: Fallback | None = None
    token_budget: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Most tokens (prompt and completion) one attempt of this step may use.",
    )
    max_input_tokens: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Truncate each value inserted into the prompt to about this many "
        "tokens, marked '[... truncated to N tokens]'.",
    )
    cache: CacheSpec | None = None
    stream: bool = Field(
        default=False,
        description="Stream a model step's reply: its text goes to the run's event "
        "stream as it arrives (`tokens` events, coalesced to about one per 50 ms and at "
        "most 256 per attempt; a retry starts its text over), and the time to its first "
        "token is recorded. The output is still validated whole, at the end.",
    )
    on_failure: OnFailure | None = None
    compensate: ToolCall | None = Field(
        default=None,
        description="A tool call that undoes this step (a saga). When its run fails after "
        "the step completed, the run's compensations run one at a time, in reverse order "
        "of completion, each on the pool its step completed on; its templates see inputs, "
        "the steps in dependsOn and this step's own output (under its name). Each call "
        "carries Idempotency-Key NAMESPACE/RUN/STEP/compensate and is tried "
        "retry.maxAttempts times; one that still fails is recorded on the step and the "
        "next compensation runs. Not undone: a step cut off mid-call (the run's "
        "deadline, or another branch's failure, stops it) or waiting in review when the "
        "run fails, though its call may have had its effect.",
    )

    def tool_calls(self) -> list[tuple[str, ToolCall]]:
        """(field name, call) of every HTTP call the step may make: its tool, and the
        compensation that undoes it."""
        calls = (("tool", self.tool), ("compensate", self.compensate))
        return [(field, call) for field, call in calls if call is not None]


class Budget(base.Model):
    """Per-run limits, and what happens when a step would exceed them."""

    CEL = (
        base.CelRule(
            rule="self.onExhausted != 'Degrade' || has(self.degradePool)",
            message="budget.degradePool is required when budget.onExhausted is Degrade",
            check=lambda b: b.on_exhausted != "Degrade" or b.degrade_pool is not None,
        ),
    )

    max_tokens_per_run: int | None = Field(default=None, ge=1, le=100_000_000)
    max_cost_per_run: float | None = Field(default=None, ge=0, le=1_000_000)
    on_exhausted: Literal["Fail", "HumanReview", "Degrade"] = "Fail"
    degrade_pool: base.Name | None = None


class StateSpec(base.Model):
    """Lifetime of run and conversation state in Redis."""

    ttl_seconds: int = Field(default=86400, ge=60, le=30 * 86400)


class ConcurrencyKey(base.Model):
    """Runs under way at once per value of a key, so one tenant cannot take the workflow."""

    key: str = Field(
        min_length=1,
        max_length=1024,
        description="A template over the run's inputs, e.g. '{{ inputs.customer_id }}': "
        "runs whose key renders the same share `limit`.",
    )
    limit: int = Field(
        ge=1,
        le=1_000_000,
        description="Runs under way at once per key value. More wait for their key, in "
        "the order submitted, without holding back other keys' runs.",
    )


class DeadLetterSpec(base.Model):
    """Whether a step that gives up is kept on its namespace's dead-letter stream, for
    inspection and `dlq retry`."""

    enabled: bool = Field(
        default=True,
        description="Keep each step that gives up on the namespace's dead-letter stream. "
        "false: the step and its run still fail, with nothing kept to retry.",
    )


def _names(steps: list[Step]) -> list[str]:
    return [s.name for s in steps]


Priority = Literal["High", "Normal", "Low"]


class HistorySpec(base.Model):
    """What the run history (PostgreSQL, when the operator has one) keeps of this
    workflow's runs beyond their metadata, and for how long."""

    keep_inputs_and_outputs: bool = Field(
        default=False,
        description="Archive each ended run's inputs and its steps' outputs too. Off: only "
        "metadata (status, timings, tokens, cost, pools, models, errors).",
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days kept inputs and outputs stay in the history after the run ends; "
        "the operator then removes them (the run's metadata stays).",
    )


class AgentWorkflowSpec(base.Model):
    """Desired state of an AgentWorkflow."""

    CEL = (
        base.CelRule(
            rule="self.steps.all(s, self.steps.exists_one(t, t.name == s.name))",
            message="step names must be unique",
            field_path=".steps",
            check=lambda w: len(set(_names(w.steps))) == len(w.steps),
        ),
        base.CelRule(
            rule="self.steps.all(s, !has(s.dependsOn) || "
            "s.dependsOn.all(d, self.steps.exists(t, t.name == d)))",
            message="every dependsOn entry must name a step of this workflow",
            field_path=".steps",
            check=lambda w: all(d in _names(w.steps) for s in w.steps for d in s.depends_on),
        ),
        base.CelRule(
            rule="self.steps.all(s, !has(s.agent) || !has(s.agent.tools) || "
            "s.agent.tools.all(n, has(self.tools) && self.tools.exists(t, t.name == n)))",
            message="every agent.tools entry must name one of spec.tools",
            field_path=".steps",
            check=lambda w: all(
                n in {t.name for t in w.tools}
                for s in w.steps
                if s.agent is not None
                for n in s.agent.tools
            ),
        ),
        base.CelRule(
            rule="!has(self.tools) || "
            "self.tools.all(t, self.tools.exists_one(u, u.name == t.name))",
            message="tool names must be unique",
            field_path=".tools",
            check=lambda w: len({t.name for t in w.tools}) == len(w.tools),
        ),
        base.CelRule(
            rule="has(self.defaultPool) || self.steps.all(s, has(s.pool) || has(s.routes))",
            message="every step needs a pool: set its pool or routes, or spec.defaultPool",
            field_path=".steps",
            check=lambda w: (
                w.default_pool is not None
                or all(s.pool is not None or s.routes is not None for s in w.steps)
            ),
        ),
    )

    default_pool: base.Name | None = Field(
        default=None, description="Pool of steps that name none."
    )
    inputs: base.FreeForm | None = Field(
        default=None,
        description="JSON Schema a run's inputs must satisfy: a submission that does not "
        "is refused with the first error (HTTP 422), and no run is created.",
    )
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    tools: list[AgentTool] = Field(
        default_factory=list,
        max_length=MAX_AGENT_TOOLS,
        description="HTTP tools the agent steps may call, declared once.",
    )
    budget: Budget | None = None
    state: StateSpec = Field(default_factory=StateSpec)
    dead_letter: DeadLetterSpec = Field(default_factory=DeadLetterSpec)
    history: HistorySpec = Field(default_factory=HistorySpec)
    deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=30 * 86400,
        description="A run still unfinished this long after submission fails, timed out, "
        "wherever its steps are: none starts late, a running call is cut off, a retry "
        "that would be due later is not scheduled, and the operator ends a run whose "
        "step waits on a queue or in review (its unfinished steps are cancelled).",
    )
    concurrency_limit: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Runs under way at once. Further runs wait (status waiting), and "
        "start in the order they were submitted as runs end.",
    )
    concurrency_key: ConcurrencyKey | None = None
    priority: Priority = Field(
        default="Normal",
        description="Priority of its runs (a submission may set its own): each pool "
        "serves its High, Normal and Low steps in weighted turns, 4:2:1 while all wait, "
        "so higher runs go first without starving lower ones, and a level with nothing "
        "waiting gives its turns to the others.",
    )


def agent_tools_of(spec: AgentWorkflowSpec, step: Step) -> list[AgentTool]:
    """The spec.tools an agent step may call, in its allow-list's order."""
    if step.agent is None:
        return []
    by_name = {t.name: t for t in spec.tools}
    return [by_name[n] for n in step.agent.tools if n in by_name]


def http_calls(spec: AgentWorkflowSpec) -> list[tuple[str, ToolCall, list[Step]]]:
    """(path below spec, call, the steps that may make it) of every HTTP call the
    workflow declares: each step's tool and compensation, and each agent tool."""
    out = [
        (f"steps[{i}].{field}", call, [step])
        for i, step in enumerate(spec.steps)
        for field, call in step.tool_calls()
    ]
    for j, tool in enumerate(spec.tools):
        users = [s for s in spec.steps if s.agent is not None and tool.name in s.agent.tools]
        out.append((f"tools[{j}].call", tool.call, users))
    return out


class AgentWorkflowStatus(base.Model):
    """Observed state of an AgentWorkflow: its compiled plan and run statistics, updated
    periodically (never per run)."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: base.Conditions = Field(default_factory=list)
    step_count: int = Field(default=0, ge=0)
    depth: int = Field(default=0, ge=0)
    critical_path: list[StepName] = Field(default_factory=list, max_length=MAX_STEPS)
    runs_started: int = Field(default=0, ge=0)
    runs_succeeded: int = Field(default=0, ge=0)
    runs_failed: int = Field(default=0, ge=0)
    runs_cancelled: int = Field(default=0, ge=0)
    runs_in_review: int = Field(default=0, ge=0)
    runs_dead_lettered: int = Field(default=0, ge=0)
    p95_run_seconds: float | None = None
    tokens_used: int = Field(default=0, ge=0)
    cost_spent: float = Field(default=0.0, ge=0)
