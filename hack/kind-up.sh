#!/usr/bin/env bash
# For machines with a Docker engine: a kind cluster shaped like `trimtab cluster up`
# (one on-demand and two tainted spot workers). Needs `kind` and `docker` on PATH.
# Without Docker, use `trimtab cluster up`, which runs the control plane directly.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v kind >/dev/null || { echo "kind not found: go install sigs.k8s.io/kind@latest" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker engine: use 'trimtab cluster up' instead" >&2; exit 1; }
kind get clusters 2>/dev/null | grep -qx trimtab || kind create cluster --config "$here/kind/cluster.yaml"
kubectl --context kind-trimtab wait --for=condition=Ready nodes --all --timeout=180s
echo "kubectl context: kind-trimtab"
