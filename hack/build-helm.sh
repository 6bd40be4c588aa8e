#!/usr/bin/env bash
# Builds the pinned Helm CLI with Go through the module proxy and caches it outside the
# repository, keyed by version, so a second run builds nothing. The chart's lint,
# template and install tests use this real helm.
#
# Usage: hack/build-helm.sh            prints the path of the helm binary
# Env:   TRIMTAB_CACHE_DIR            cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab)
set -euo pipefail

# shellcheck source=hack/versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"

cache_root="${TRIMTAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trimtab}"
bin_dir="$cache_root/bin/helm-${HELM_VERSION}_${GO_TOOLCHAIN}"

if [[ -x "$bin_dir/helm" ]]; then
  echo "$bin_dir/helm"
  exit 0
fi

echo "[build-helm] building helm ${HELM_VERSION} with ${GO_TOOLCHAIN} (first use only)" >&2
export GOTOOLCHAIN="$GO_TOOLCHAIN" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}"
mkdir -p "$bin_dir.partial"
# Helm stamps its version from these variables at link time, as its own Makefile does.
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}"
GOBIN="$bin_dir.partial" go install -ldflags "$ldflags" "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
echo "[build-helm] cached in $bin_dir" >&2
echo "$bin_dir/helm"
