"""The demo's load: a bursty arrival schedule, the same for the same seed.

Arrivals are a Poisson process whose rate is a square wave: a short burst at the peak
rate in every period, a low base rate between. With a burst of `burst` seconds every
`period` seconds, the base rate is set so the average is `rate` and the peak is
`peak_ratio` times it (10:1 by default: agent traffic is that spiky).
"""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class Shape:
    rate: float = 4.0  # average runs per second
    peak_ratio: float = 10.0
    period: float = 40.0  # seconds between burst starts
    burst: float = 3.0  # seconds each burst lasts
    batch_share: float = 0.2  # arrivals that are batch summarization, not support
    agent_share: float = 0.1  # arrivals that go to the support agent, in a session

    def __post_init__(self) -> None:
        share = self.burst / self.period
        if not 0 < share < 1 / self.peak_ratio:
            raise ValueError(
                f"a {self.burst} s burst every {self.period} s cannot reach a peak of "
                f"{self.peak_ratio}x the average: the burst must be under "
                f"{self.period / self.peak_ratio:g} s"
            )

    @property
    def peak_rate(self) -> float:
        return self.rate * self.peak_ratio

    @property
    def base_rate(self) -> float:
        share = self.burst / self.period
        return self.rate * (1 - share * self.peak_ratio) / (1 - share)

    def rate_at(self, t: float) -> float:
        return self.peak_rate if (t % self.period) < self.burst else self.base_rate


@dataclasses.dataclass(frozen=True)
class Arrival:
    at: float  # seconds after the load starts
    workflow: str  # "customer-support", "batch-summarize" or "support-agent"
    inputs: dict[str, str]
    session: str | None = None  # the support agent's conversations, one per customer


MESSAGES = (
    "My invoice shows a charge I do not recognise",
    "The app logs me out every few minutes",
    "How do I add a second user to my account?",
    "I was charged twice this month, please refund one",
    "Export to CSV fails with an error",
    "Can I change the email address on my account?",
)


def schedule(shape: Shape, duration: float, seed: int) -> list[Arrival]:
    """Every arrival of the load phase, in order. Thinning of a Poisson process at the
    peak rate gives exact rates in both phases of the wave."""
    rng = random.Random(seed)
    out: list[Arrival] = []
    t = 0.0
    while True:
        t += rng.expovariate(shape.peak_rate)
        if t >= duration:
            return out
        if rng.random() >= shape.rate_at(t) / shape.peak_rate:
            continue
        out.append(_arrival(t, rng, shape, len(out)))


def _arrival(t: float, rng: random.Random, shape: Shape, n: int) -> Arrival:
    draw = rng.random()
    if draw < shape.batch_share:
        text = rng.choice(MESSAGES) * 20
        return Arrival(t, "batch-summarize", {"part_1": text, "part_2": text[::-1]})
    if draw < shape.batch_share + shape.agent_share:
        # Few customers, so their conversations come back: the agent remembers them.
        customer = f"c{rng.randrange(40)}"
        inputs = {"customer_id": customer, "message": rng.choice(MESSAGES)}
        return Arrival(t, "support-agent", inputs, session=f"customer-{customer}")
    return Arrival(
        t,
        "customer-support",
        {"customer_id": f"c{rng.randrange(500)}", "message": rng.choice(MESSAGES), "n": str(n)},
    )
