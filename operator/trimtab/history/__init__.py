"""Run history in PostgreSQL: every ended run and its steps, archived from the
ended-runs outbox (trimtab.queue.ended) with idempotent upserts, and the queries over
it (runs, cost). The only module that talks to PostgreSQL."""
