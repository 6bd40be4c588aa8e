# shellcheck shell=bash
# go_install_cached: build one pinned Go command through the module proxy into the cache
# outside the repository, once per version and toolchain, and print its path. Sourced by
# hack/build-helm.sh and hack/build-promtool.sh after hack/versions.env.
#
# Usage: go_install_cached NAME DIR PACKAGE@VERSION [go install flags...]
#   NAME  the binary's name, DIR the cache directory's name (version and toolchain in it)
# Env:   TRIMTAB_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab)

go_install_cached() {
  local name="$1" dir="$2" package="$3"
  shift 3
  local cache_root="${TRIMTAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trimtab}"
  local bin_dir="$cache_root/bin/$dir"
  if [[ -x "$bin_dir/$name" ]]; then
    echo "$bin_dir/$name"
    return 0
  fi
  mkdir -p "$cache_root/bin"
  # Concurrent first uses (two test tiers, two checkouts) wait for one build instead of
  # racing in a shared work directory; the one that waited finds the binary and returns.
  (
    flock 9
    [[ -x "$bin_dir/$name" ]] && exit 0
    echo "[build-$name] building $package with ${GO_TOOLCHAIN} (first use only)" >&2
    rm -rf "$bin_dir.partial"
    mkdir -p "$bin_dir.partial"
    # A build interrupted half-way leaves only .partial behind, never a broken binary.
    GOTOOLCHAIN="$GO_TOOLCHAIN" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}" \
      GOBIN="$bin_dir.partial" go install "$@" "$package"
    rm -rf "$bin_dir"
    mv "$bin_dir.partial" "$bin_dir"
  ) 9>"$bin_dir.lock" >&2
  echo "$bin_dir/$name"
}
