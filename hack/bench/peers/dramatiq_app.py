"""The job for Dramatiq (Redis broker and results); workers: `dramatiq peers.dramatiq_app`."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from peers import READY_KEY, job_sync, redis_url


class Ready(Middleware):
    """Tells the benchmark a worker process is consuming."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, RedisBroker)
        broker.client.incr(READY_KEY)


broker = RedisBroker(url=redis_url())
results = RedisBackend(url=redis_url())
broker.add_middleware(Results(backend=results))
broker.add_middleware(Ready())
dramatiq.set_broker(broker)


# No retries: a failure should show up as a missing result, not as minutes of backoff.
@dramatiq.actor(store_results=True, max_retries=0)
def noop() -> object:
    return job_sync()
