"""The only Kubernetes I/O in Trimtab.

Everything that reads from or writes to the apiserver goes through this package, so
the client library can be swapped (see hack/bench/kube_client.py for why it is the
official `kubernetes` client today) and every other layer stays testable as pure code.
Objects cross this boundary as plain dicts, the shape `kubectl get -o json` shows.
"""
