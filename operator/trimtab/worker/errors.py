"""Why a step attempt failed, as the worker's failure policy (trimtab.worker.policy)
needs to know it: retryable or permanent, and whether another pool might do better.

StepError                 base: retryable and portable unless said otherwise
├── ModelError            the model endpoint failed (error_type: http_429, http_5xx,
│                         http_4xx, timeout, connect); may carry retry_after
├── ToolError             an HTTP tool failed (same error types)
├── StepTimeoutError      the whole step outlived its timeoutSeconds
├── InvalidOutputError    the output did not parse or failed its JSON Schema; keeps the
│                         rejected text for human review
├── TemplateInputError    the prompt or body could not be rendered (neither retryable
│                         nor portable: the same inputs fail the same way anywhere)
├── ReplyTooLargeError    the model or tool replied with more than the worker reads
│                         (not retried: the same request would get the same reply)
├── SecretMissingError    a tool header's Secret or key does not exist in the namespace
│                         (not retried: it fails the same way until someone creates it)
├── InvalidToolCallsError an agent's model got more tool calls wrong than its step
│                         allows (not retried: its transcript keeps the count)
└── UnexpectedError       anything else raised inside the step (a reply nested too deep
                          to parse, text that cannot be encoded, a bug): not retried
                          blindly, since the same inputs would raise again

Retryable: timeouts, connection errors, 429 (honouring Retry-After), 5xx, invalid
output. Permanent: other 4xx, template errors, and invalid output once the retries
and the fallback are spent. `error_type` is a trimtab.metrics.ErrorType: the bounded
label of trimtab_errors_total (with the guards' budget_exhausted, deadline_exceeded and
breaker_open) and the prefix of the error kept in run state.
"""

from __future__ import annotations

from trimtab.metrics import ErrorType


class StepError(Exception):
    """A step attempt failed."""

    error_type = ErrorType.OTHER
    retryable = True
    portable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # What a call made before the failure spent (an output refused after the model
        # answered): charged all the same (trimtab.queue.budgets.book).
        self.tokens = 0
        self.cost = 0.0


class _HttpStepError(StepError):
    def __init__(
        self, message: str, *, error_type: ErrorType, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.error_type = error_type
        self.retryable = error_type is not ErrorType.HTTP_4XX


class ModelError(_HttpStepError):
    """The model endpoint failed or timed out."""


class ToolError(_HttpStepError):
    """An HTTP tool failed or timed out."""


class StepTimeoutError(StepError):
    """The step did not finish within its timeoutSeconds."""

    error_type = ErrorType.TIMEOUT


class InvalidOutputError(StepError):
    """The output is not what the step's schema requires."""

    error_type = ErrorType.INVALID_OUTPUT

    def __init__(self, message: str, *, output: str | None = None) -> None:
        super().__init__(message)
        self.output = output


class TemplateInputError(StepError):
    """The step's template refers to something its context lacks."""

    error_type = ErrorType.TEMPLATE
    retryable = False
    portable = False


class SecretMissingError(StepError):
    """A tool header's Secret key is not mounted: the Secret or the key does not exist."""

    error_type = ErrorType.SECRET_MISSING
    retryable = False
    portable = False

    def __init__(self, name: str, key: str) -> None:
        super().__init__(
            f"Secret {name} has no key {key} in this namespace (or does not exist): "
            "create it, then retry the run"
        )
        self.secret = (name, key)


class UnexpectedError(StepError):
    """An exception no step error type expected, kept with its type and message."""

    retryable = False
    portable = False

    def __init__(self, cause: BaseException) -> None:
        text = str(cause).splitlines()[0][:300] if str(cause) else ""
        super().__init__(f"unexpected {type(cause).__name__}" + (f": {text}" if text else ""))


class ReplyTooLargeError(StepError):
    """A model or tool reply over the worker's limit (trimtab.worker.http)."""

    error_type = ErrorType.TOO_LARGE
    retryable = False
    portable = False

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the reply is at least {size} bytes; the limit is {limit}")


class InvalidToolCallsError(StepError):
    """An agent step's model made more invalid tool calls than agent.maxInvalidToolCalls."""

    error_type = ErrorType.INVALID_OUTPUT
    retryable = False
    portable = False

    def __init__(self, count: int, limit: int, last: str) -> None:
        super().__init__(
            f"the model made {count} invalid tool calls (at most {limit} allowed); "
            f"last: {last[:300]}"
        )
