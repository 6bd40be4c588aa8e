"""The words the data plane's Python and Lua share: step states, run statuses, run event
types, what each script answers, and the circuit breaker's states and operations.

Each is spelled once, here. `lua/_wire.lua` is generated from this module (by
trimtab.queue.luawire, through hack/generate.py) and prepended to every script, so a
script says `STEP.done`, never `'done'`; its tables raise on an unknown name, so a typo
fails the first test that runs the script instead of comparing with nil.
"""

from __future__ import annotations

import enum


class StepState(enum.StrEnum):
    """Where one step of a run is: pending -> queued -> running -> done, or retrying (back
    to queued when its backoff is due), review (waiting for a person), dead (dead-lettered
    or rejected), cancelled (its run reached its deadline, or failed, before it ended)."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    DEAD = "dead"
    REVIEW = "review"
    CANCELLED = "cancelled"


class RunStatus(enum.StrEnum):
    """A run's status: running until it succeeds, fails or is cancelled; review while a
    step waits for a person (it resumes running when approved); waiting, before it runs,
    while its workflow has `concurrencyLimit` runs under way (admission in _common.lua).
    Failed and cancelled runs have given up: nothing more of them starts, and what was
    under way is discarded (`GIVEN_UP`)."""

    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVIEW = "review"
    CANCELLED = "cancelled"  # a person or an app asked it to stop (cancel.lua)

    @property
    def ended(self) -> bool:
        return self in ENDED


ENDED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
GIVEN_UP = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})


class EventType(enum.StrEnum):
    """The `type` of an entry on a run's event stream."""

    SUBMITTED = "submitted"
    ADMITTED = "admitted"  # a waiting run started, as another ended
    STEP_DONE = "step_done"
    STEP_RETRY = "step_retry"
    STEP_ESCALATED = "step_escalated"
    STEP_REVIEW = "step_review"
    STEP_REJECTED = "step_rejected"
    STEP_RESUMED = "step_resumed"
    STEP_DEAD = "step_dead"
    RUN_TIMED_OUT = "run_timed_out"
    RUN_CANCELLED = "run_cancelled"  # someone cancelled the run (cancel.lua); then run_done
    RUN_DONE = "run_done"
    STEP_COMPENSATED = "step_compensated"  # a failed run's compensation of a step ended
    RUN_COMPENSATED = "run_compensated"  # the last of a failed run's compensations ended
    TOKENS = "tokens"  # text a streamed model reply added (trimtab.queue.streamed)
    AGENT_TURN = "agent_turn"  # an agent step's turn was kept (trimtab.queue.transcripts)


class Reply(enum.StrEnum):
    """What a script answers about the attempt it was asked to move."""

    RUN = "run"  # start: the attempt is running now
    OK = "ok"  # complete: stored, dependents enqueued
    PARKED = "parked"  # review: the step waits for a person
    SCHEDULED = "scheduled"  # retry: the next attempt waits out its backoff
    ESCALATED = "escalated"  # escalate: the next attempt is on the fallback pool
    DEAD = "dead"  # fail: dead-lettered, the run failed
    ALSO_DEAD = "also-dead"  # fail: dead-lettered in a run another step had failed already
    REJECTED = "rejected"  # reject: a person failed the step
    RESUMED = "resumed"  # resume: a dead-lettered step runs again
    DUPLICATE = "duplicate"  # the delivery was stale: acknowledged, nothing else
    CANCELLED = "cancelled"  # start, retry: the run has failed; the step is cancelled
    RESERVED = "reserved"  # reserve: the step's worst case is held against the run's budget
    BOOKED = "booked"  # book: a failed attempt's spend is counted
    OVER_BUDGET = "over-budget"  # reserve: the worst case does not fit what is left
    WAIT = "wait"  # ratelimit: no room for the call yet
    EXHAUSTED = "exhausted"  # start: delivered more often than allowed; caller fails it
    CONFLICT = "conflict"  # complete: the run moved on; read again and retry
    STALE = "stale"  # reject, resume: the step moved on already
    TERMINAL = "terminal"  # approve: the run already failed; a review cannot revive it
    OTHERS_DEAD = "others-dead"  # resume: other steps of the run are dead and not resumed
    TIMED_OUT = "timed-out"  # timeout: the run ended at its deadline
    ENDED = "ended"  # cancel: the run had ended already; nothing changed
    FULL = "full"  # review: the namespace's review stream holds REVIEWS_MAX; not parked
    GONE = "gone"  # resume, approve: the run expired
    NOT_DEAD = "not-dead"  # resume: the step is not dead-lettered
    MALFORMED = "malformed"  # resume: the entry never was a step
    # undo: recorded, and the next compensation sent; resume: the run was undone (its
    # compensations began), so it cannot run again
    COMPENSATED = "compensated"


class RateOp(enum.StrEnum):
    """What a worker tells ratelimit.lua: take a call's share, or how the call went."""

    TAKE = "take"
    THROTTLED = "throttled"  # the endpoint answered 429: halve the rate
    OK = "ok"  # a call succeeded: win back some of the rate


class BreakerState(enum.StrEnum):
    """An endpoint's circuit breaker (breaker.lua holds the state machine)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOp(enum.StrEnum):
    """What a worker tells breaker.lua: ask to call, or report how a call went."""

    ALLOW = "allow"
    SUCCESS = "success"
    FAILURE = "failure"


class BreakerVerdict(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class RunField(enum.StrEnum):
    """A run's own fields in its run hash (trimtab.queue.runs decodes the hash)."""

    WORKFLOW = "wf"
    GENERATION = "gen"
    STATUS = "status"
    INPUTS = "inputs"
    CREATED_MS = "created_ms"
    ENDED_MS = "end_ms"
    TOKENS = "tokens"
    COST = "cost"
    VERSION = "version"  # bumped by every completion: the fence of a step's outputs
    REMAINING = "remaining"  # steps not yet done
    IN_REVIEW = "in_review"  # steps waiting for a reviewer
    CACHE_HITS = "cache_hits"
    CACHE_MISSES = "cache_misses"
    ERROR = "err"  # why the run ended when no step says (its deadline, a cancel)
    DEADLINE_MS = "deadline_ms"  # when the run times out, if it has a deadline
    HELD_TOKENS = "held_tokens"  # the worst cases its running steps hold (reserve.lua)
    HELD_COST = "held_cost"
    # Under a concurrencyLimit: the workflow's admission keys and limit (JSON), and while
    # the run waits, its roots' task messages (JSON), enqueued once it is admitted.
    ADMISSION = "admission"
    ROOTS = "roots"
    DEAD_LETTERED = "dlq"  # set once the run first had a step dead-lettered (counted once)
    PRIORITY = "priority"  # its Priority: the level of every pool its steps go to
    SESSION = "session"  # the conversation it belongs to (trimtab.queue.sessions), if any
    # Compensations (a saga): those still to run, in order of completion, each its
    # step, stream and task message (JSON); and the step whose compensation is out.
    UNDO = "undo"
    UNDOING = "undoing"
    UNDONE = "undone"  # set once its first compensation was sent: it cannot be resumed
    TTL = "ttl"  # seconds it lives: each compensation sent gives it that long again
    # The W3C traceparent of the span that submitted it, whose trace the run's continues
    # (trimtab.telemetry.ids); absent when the run starts its own.
    TRACEPARENT = "tp"
    IDEMPOTENCY_KEY = "idem"  # the key it was submitted with, for its history


class StepField(enum.StrEnum):
    """A step's fields in its run's hash, each under the step's prefix (step_field)."""

    STATE = "state"
    ATTEMPT = "att"
    DELIVERIES = "dlv"
    POOL = "pool"
    OUTPUT = "out"
    ERROR = "err"
    TOKENS = "tokens"
    COST = "cost"
    QUEUED_MS = "qms"
    STARTED_MS = "start_ms"
    ENDED_MS = "end_ms"
    WORKER = "worker"
    FENCE = "fence"  # the token of the delivery that started the attempt last (start.lua)
    HELD_TOKENS = "held_tokens"  # its attempt's worst case, held against the run's budget
    HELD_COST = "held_cost"
    BUDGET_WINDOWS = "budgets"  # the AgentBudget windows the hold is also on (keys, spaced)
    INTERRUPTED = "cut"  # deliveries cut off with their worker's others (start.lua)
    COUNTED = "counted"  # which of the two counters the last start added to (release.lua)
    REVIEW = "review"  # the step's entry on the review stream, while it waits there
    UNDO = "undo"  # how its compensation ended (Compensation), once its run failed
    UNDO_ERROR = "undo_err"
    UNDO_DELIVERIES = "undo_dlv"  # deliveries of its compensation so far
    TRANSCRIPT = "transcript"  # an agent step's completed turns (trimtab.queue.transcripts)
    CAPACITY = "cap"  # the capacity its latest delivery's worker runs on (start.lua)
    ATTEMPTS = "atts"  # its ended attempts, a JSON list of AttemptField maps (_common.lua)


class UndoOp(enum.StrEnum):
    """What a worker tells undo.lua: a compensation's delivery starts, or it finished."""

    START = "start"
    FINISH = "finish"


class Compensation(enum.StrEnum):
    """How a completed step's compensation ended, after its run failed."""

    DONE = "done"
    FAILED = "failed"  # every try failed; the next compensation ran all the same


class Priority(enum.StrEnum):
    """A run's priority: which of its pool's streams its steps go on (trimtab.queue.levels
    says how workers share their slots among them). Declared highest first."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class NamespaceKey(enum.StrEnum):
    """Keys of a namespace that a script names from a key it was given (their common
    namespace prefix, so the same hash tag and slot) rather than takes in KEYS: every
    script that enqueues writes them, whichever stream it was handed."""

    TOUCHED = "pools:touched"  # pool stream -> ms of its last enqueue (sorted set)


class WorkflowStat(enum.StrEnum):
    """A workflow's run counters in its stats hash (the scripts count, trimtab.queue.
    workflows reads them for status)."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"
    IN_REVIEW = "in_review"
    TOKENS = "tokens"
    COST = "cost"


class LimitKind(enum.StrEnum):
    """Which of a limit's amounts a reservation was refused for (reserve.lua)."""

    TOKENS = "tokens"
    COST = "cost"


class WindowField(enum.StrEnum):
    """One AgentBudget window's hash (reserve.lua holds, the ending scripts book)."""

    TOKENS = "tokens"  # spent by calls that ended
    COST = "cost"
    HELD_TOKENS = "held_tokens"  # the worst cases of the calls under way
    HELD_COST = "held_cost"
    # The worst case (tokens, cost) of the last call the window's spend left no room
    # for (reserve.lua): new runs are refused while that call would still not fit.
    SPENT_OUT_TOKENS = "spent_out_tokens"
    SPENT_OUT_COST = "spent_out_cost"


class EndedField(enum.StrEnum):
    """An entry of a namespace's ended-runs outbox (keys.ended_runs), written by the
    script that ends the run, in the same atomic step (_ending.lua), and read by the
    operator, which records the run's span (trimtab.queue.ended)."""

    RUN_KEY = "key"  # the run's hash (keys.run)
    STATUS = "status"
    AT_MS = "at"


class AttemptOutcome(enum.StrEnum):
    """How one attempt of a step ended, as its step's attempt log records it."""

    DONE = "done"
    RETRY = "retry"  # failed; the next attempt follows its backoff
    ESCALATED = "escalated"  # failed; the next attempt runs on the fallback pool
    DEAD = "dead"  # failed for good: the step is dead-lettered
    REVIEW = "review"  # produced an output a person must review
    # Still running when its run ended (cancelled, timed out, failed on another branch):
    # no script logs it; the archive names the attempt so (trimtab.handlers.archiving).
    INTERRUPTED = "interrupted"


class AttemptField(enum.StrEnum):
    """An entry of a step's attempt log (StepField.ATTEMPTS), appended by the script
    that ends the attempt (log_attempt in _common.lua) and read by the archiver
    (trimtab.queue.runs). Tokens and cost are the step's totals when the attempt
    ended: an attempt's own are the difference from the entry before."""

    ATTEMPT = "a"
    OUTCOME = "o"
    POOL = "pool"
    WORKER = "worker"
    CAPACITY = "cap"
    STARTED_MS = "start"
    ENDED_MS = "end"
    TOKENS = "tokens"
    COST = "cost"
    ERROR = "err"


STEP_PREFIX = "s:"

# A step's attempt log keeps its newest this many entries (log_attempt in _common.lua).
ATTEMPTS_LOGGED = 50
# Bounds on a namespace's streams. Reviews are removed as they are handled, so a full
# review stream means nobody reviews: a step is dead-lettered instead of parked. The
# dead-letter stream is trimmed (approximately) to its newest entries.
REVIEWS_MAX = 10_000
DEAD_LETTERS_MAX = 100_000
# The ended-runs outbox is trimmed (approximately) to this many entries: what an
# operator that is down for long cannot read in time is lost to tracing, not to the runs.
ENDED_MAX = 200_000
# submit.lua refuses a new run while Redis uses more than this share of its maxmemory,
# keeping the rest for the runs already under way (trimtab.queue.scripts).
ADMIT_BELOW_PERCENT = 90
# A delivery cut off with its dead worker's other steps counts against this many times
# the pool's maxDeliveries (start.lua).
INTERRUPTED_FACTOR = 4


def step_field(step: str, field: StepField) -> str:
    """A step's field of the run hash, e.g. `s:respond:state`."""
    return f"{STEP_PREFIX}{step}:{field.value}"


def step_of_field(key: str, field: StepField) -> str | None:
    """The step whose `field` the run hash's `key` is, or None when it is not one."""
    suffix = f":{field.value}"
    if key.startswith(STEP_PREFIX) and key.endswith(suffix):
        return key[len(STEP_PREFIX) : -len(suffix)]
    return None
