"""`trimtab demo`: the whole system on one machine, under bursty load, with a report.

Like trimtab_dev.devcluster this is tooling around the product, not part of it: it drives
the product only through its public pieces (the CLI's cluster, the CRDs and samples,
`trimtab operator run`, `trimtab worker run` via the local supervisor, the SDK) and
nothing in the operator or worker knows it exists.
"""
