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

# go_build_module_cached: as go_install_cached, for a command whose module's go.mod has
# replace directives (which `go install PKG@VERSION` refuses): it is built from a
# throwaway main module that requires it as a tool and repeats those replaces.
#
# Usage: go_build_module_cached NAME DIR PACKAGE VERSION [OLD=NEW@VERSION...] -- [go build flags...]
go_build_module_cached() {
  local name="$1" dir="$2" package="$3" version="$4"
  shift 4
  local replaces=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do replaces+=("$1"); shift; done
  [[ "${1:-}" == "--" ]] && shift
  local cache_root="${TRIMTAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trimtab}"
  local bin_dir="$cache_root/bin/$dir"
  if [[ -x "$bin_dir/$name" ]]; then
    echo "$bin_dir/$name"
    return 0
  fi
  mkdir -p "$cache_root/bin"
  (
    flock 9
    [[ -x "$bin_dir/$name" ]] && exit 0
    echo "[build-$name] building $package@$version with ${GO_TOOLCHAIN} (first use only)" >&2
    rm -rf "$bin_dir.partial"
    mkdir -p "$bin_dir.partial/src"
    cd "$bin_dir.partial/src"
    export GOTOOLCHAIN="$GO_TOOLCHAIN" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}" GOFLAGS=-mod=mod
    go mod init "trimtab.local/build-$name" >/dev/null 2>&1
    local r
    for r in "${replaces[@]}"; do go mod edit -replace "$r"; done
    go get -tool "$package@$version"
    go build "$@" -o "$bin_dir.partial/$name" "$package"
    cd "$cache_root/bin"
    rm -rf "$bin_dir.partial/src"
    rm -rf "$bin_dir"
    mv "$bin_dir.partial" "$bin_dir"
  ) 9>"$bin_dir.lock" >&2
  echo "$bin_dir/$name"
}
