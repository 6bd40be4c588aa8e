#!/usr/bin/env bash
# Builds the pinned Prometheus promtool CLI with Go through the module proxy and caches
# it outside the repository, keyed by version, so a second run builds nothing. The
# alerting rules are checked and unit-tested with this real promtool.
#
# Usage: hack/build-promtool.sh        prints the path of the promtool binary
# Env:   TRIMTAB_CACHE_DIR            cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab)
set -euo pipefail

# shellcheck source=hack/versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"

# PROMETHEUS_VERSION is the Go module version: Prometheus 3.X.Y is tagged v0.3XX.Y.
: "${PROMETHEUS_VERSION:?PROMETHEUS_VERSION must be set in hack/versions.env}"
cache_root="${TRIMTAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trimtab}"
bin_dir="$cache_root/bin/promtool-${PROMETHEUS_VERSION}_${GO_TOOLCHAIN}"

if [[ -x "$bin_dir/promtool" ]]; then
  echo "$bin_dir/promtool"
  exit 0
fi

echo "[build-promtool] building promtool ${PROMETHEUS_VERSION} with ${GO_TOOLCHAIN} (first use only)" >&2
export GOTOOLCHAIN="$GO_TOOLCHAIN" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}"
mkdir -p "$bin_dir.partial"
# Prometheus stamps its release version (v0.316.0 -> 3.16.0) from this variable at link
# time, as its .promu.yml does.
if [[ "$PROMETHEUS_VERSION" =~ ^v0\.([0-9])([0-9]{2})\.([0-9]+)$ ]]; then
  release="${BASH_REMATCH[1]}.$((10#${BASH_REMATCH[2]})).${BASH_REMATCH[3]}"
else
  release="$PROMETHEUS_VERSION"
fi
ldflags="-s -w -X github.com/prometheus/common/version.Version=${release}"
GOBIN="$bin_dir.partial" go install -tags netgo -ldflags "$ldflags" \
  "github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_VERSION}"
rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
echo "[build-promtool] cached in $bin_dir" >&2
echo "$bin_dir/promtool"
