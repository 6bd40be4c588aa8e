"""Pure statistics shared by workers, which publish them, and the operator, which scales on them.

Both sides must agree on one encoding and one arithmetic, so it lives here, below every
I/O layer: a worker writes a sketch or a per-second count to Redis, and the operator
merges what many workers wrote without asking Prometheus.
"""
