#!/usr/bin/env bash
# Builds the pinned Helm CLI with Go through the module proxy and caches it outside the
# repository, keyed by version, so a second run builds nothing. The chart's lint,
# template and install tests use this real helm.
#
# Usage: hack/build-helm.sh            prints the path of the helm binary
# Env:   TRIMTAB_CACHE_DIR            cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab)
set -euo pipefail

here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=hack/versions.env
source "$here/versions.env"
# shellcheck source=hack/lib/go-install.sh
source "$here/lib/go-install.sh"

# Helm stamps its version from these variables at link time, as its own Makefile does.
go_install_cached helm "helm-${HELM_VERSION}_${GO_TOOLCHAIN}" \
  "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}" \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}"
