#!/usr/bin/env bash
# Fetches the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule and
# the rest) at a pinned version through the Go module proxy, where the project's module
# carries them, and prints the directory that holds them. The chart's monitoring objects
# are installed against these real schemas in the e2e tests.
#
# Usage: hack/fetch-prometheus-crds.sh   prints the CRD directory (in the Go module cache)
set -euo pipefail

# shellcheck source=hack/versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"

: "${PROMETHEUS_OPERATOR_VERSION:?PROMETHEUS_OPERATOR_VERSION must be set in hack/versions.env}"
export GOTOOLCHAIN="$GO_TOOLCHAIN" GOFLAGS=-mod=mod
module="github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}"
# Outside any module, so the repository's own go.mod (if any) is never touched.
dir="$(cd "${TMPDIR:-/tmp}" && go mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
crds="$dir/example/prometheus-operator-crd"
if [[ ! -f "$crds/monitoring.coreos.com_servicemonitors.yaml" ]]; then
  echo "[fetch-prometheus-crds] no CRDs under $crds" >&2
  exit 1
fi
echo "$crds"
