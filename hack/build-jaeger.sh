#!/usr/bin/env bash
# Builds the pinned Jaeger (its all-in-one `jaeger` binary: an OTLP receiver, an
# in-memory trace store and the query API and UI) with Go through the module proxy and
# caches it outside the repository, keyed by version, so a second run builds nothing.
# The tracing tests and `make demo` export run traces to this real Jaeger.
#
# Usage: hack/build-jaeger.sh         prints the path of the jaeger binary
# Env:   TRIMTAB_CACHE_DIR            cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab)
set -euo pipefail

here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=hack/versions.env
source "$here/versions.env"
# shellcheck source=hack/lib/go-install.sh
source "$here/lib/go-install.sh"

: "${JAEGER_VERSION:?JAEGER_VERSION must be set in hack/versions.env}"
# Jaeger's go.mod replaces sarama (its Kafka client) with an older release; the build
# module repeats that, so the binary links what Jaeger's own release build links.
go_build_module_cached jaeger "jaeger-${JAEGER_VERSION}_${GO_TOOLCHAIN}" \
  github.com/jaegertracing/jaeger/cmd/jaeger "$JAEGER_VERSION" \
  github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0 -- -trimpath -ldflags "-s -w"
