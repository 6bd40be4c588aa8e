#!/usr/bin/env bash
# Builds the pinned Prometheus promtool CLI with Go through the module proxy and caches
# it outside the repository, keyed by version, so a second run builds nothing. The
# alerting rules are checked and unit-tested with this real promtool.
#
# Usage: hack/build-promtool.sh        prints the path of the promtool binary
# Env:   TRIMTAB_CACHE_DIR            cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab)
set -euo pipefail

here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=hack/versions.env
source "$here/versions.env"
# shellcheck source=hack/lib/go-install.sh
source "$here/lib/go-install.sh"

# PROMETHEUS_VERSION is the Go module version: Prometheus 3.X.Y is tagged v0.3XX.Y.
: "${PROMETHEUS_VERSION:?PROMETHEUS_VERSION must be set in hack/versions.env}"
# Prometheus stamps its release version (v0.316.0 -> 3.16.0) from this variable at link
# time, as its .promu.yml does.
if [[ "$PROMETHEUS_VERSION" =~ ^v0\.([0-9])([0-9]{2})\.([0-9]+)$ ]]; then
  release="${BASH_REMATCH[1]}.$((10#${BASH_REMATCH[2]})).${BASH_REMATCH[3]}"
else
  release="$PROMETHEUS_VERSION"
fi
go_install_cached promtool "promtool-${PROMETHEUS_VERSION}_${GO_TOOLCHAIN}" \
  "github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_VERSION}" \
  -tags netgo -ldflags "-s -w -X github.com/prometheus/common/version.Version=${release}"
