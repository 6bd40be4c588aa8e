"""The scaling simulator: a discrete-event model of a pool driven by the operator's own
autoscaling policy, beside KEDA, an HPA on CPU and a static fleet, on recorded or
synthetic arrival traces (`trimtab simulate scaling`). `traces` builds arrivals,
`model` runs them, `hpa` and `peers` are the controllers, `compare` scores them.
"""
