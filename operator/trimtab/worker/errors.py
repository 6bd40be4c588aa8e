"""Why a step attempt failed, as the worker's failure policy (trimtab.worker.policy)
needs to know it: retryable or permanent, and whether another pool might do better.

StepError                 base: retryable and portable unless said otherwise
├── ModelError            the model endpoint failed (error_type: http_429, http_5xx,
│                         http_4xx, timeout, connect); may carry retry_after
├── ToolError             an HTTP tool failed (same error types)
├── StepTimeoutError      the whole step outlived its timeoutSeconds
├── InvalidOutputError    the output did not parse or failed its JSON Schema; keeps the
│                         rejected text for human review
└── TemplateInputError    the prompt or body could not be rendered (neither retryable
                          nor portable: the same inputs fail the same way anywhere)

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
