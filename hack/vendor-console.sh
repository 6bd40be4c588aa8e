#!/usr/bin/env bash
# Vendors the web console's one front-end dependency, htmx, from npm into the Python
# package (operator/trimtab/server/console/static/), so the console needs no CDN at run
# time. npm checks the tarball against the registry's integrity hash; the file's own
# SHA-256 is recorded beside it and tests/unit/test_console_parts.py checks it, so an
# edit by hand fails the tests. Re-run after changing HTMX_VERSION.
set -euo pipefail
HTMX_VERSION=2.0.11
root=$(cd "$(dirname "$0")/.." && pwd)
static="$root/operator/trimtab/server/console/static"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$HTMX_VERSION" >/dev/null && tar xzf "htmx.org-$HTMX_VERSION.tgz")
cp "$work/package/dist/htmx.min.js" "$static/htmx.min.js"
cp "$work/package/LICENSE" "$static/htmx.LICENSE"
sum=$(sha256sum "$static/htmx.min.js" | cut -d' ' -f1)
printf 'htmx.org %s %s\n' "$HTMX_VERSION" "$sum" > "$static/VENDORED"
echo "vendored htmx.org $HTMX_VERSION ($sum)"
