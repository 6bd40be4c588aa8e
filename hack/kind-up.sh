#!/usr/bin/env bash
# For machines with a Docker engine: a kind cluster shaped like `trimtab cluster up`
# (one on-demand and two tainted spot workers), with the project's image built from the
# Dockerfile and loaded into every node, so `helm install` of the chart runs as written
# (the chart's default image, pulled IfNotPresent, is already there). Needs `kind` and
# `docker` on PATH. Without Docker, use `trimtab cluster up`, whose real node gets the
# same image from hack/build-image.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v kind >/dev/null || { echo "kind not found: go install sigs.k8s.io/kind@latest" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker engine: use 'trimtab cluster up' instead" >&2; exit 1; }
kind get clusters 2>/dev/null | grep -qx trimtab || kind create cluster --config "$here/kind/cluster.yaml"
kubectl --context kind-trimtab wait --for=condition=Ready nodes --all --timeout=180s
# The image reference the chart renders by default: its repository and appVersion.
repo="$(sed -nE 's/^  repository: *"?([^" ]+)"?.*/\1/p' "$here/../charts/trimtab/values.yaml" | head -1)"
tag="$(sed -nE 's/^appVersion: *"?([^" ]+)"?.*/\1/p' "$here/../charts/trimtab/Chart.yaml")"
image="${TRIMTAB_IMAGE:-$repo:$tag}"
docker build -t "$image" "$here/.."
kind load docker-image "$image" --name trimtab
echo "kubectl context: kind-trimtab; image $image loaded into every node"
