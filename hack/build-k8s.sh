#!/usr/bin/env bash
# Builds the pinned local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl), the kubelet and kube-proxy of the local cluster's real nodes
# (and their pause binary, from the same Kubernetes source, with gcc), and kwok with Go
# through the module proxy, and caches them outside the repository, keyed
# by version, so a second run builds nothing. Only missing binaries are built, each into a
# temporary name first, so an interrupted build never leaves a broken binary; a lock on the
# cache directory lets concurrent callers (tests, the demo) wait for one build instead of
# racing.
#
# Usage: hack/build-k8s.sh            prints the directory holding the binaries
# Env:   TRIMTAB_CACHE_DIR            cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab)
set -euo pipefail

# shellcheck source=hack/versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
# etcd 3.5+ is required: client-go 1.36 streams lists over watches, which needs
# etcd's RequestWatchProgress (3.4 lacks it, and watches then end in errors).

cache_root="${TRIMTAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trimtab}"
bin_dir="$cache_root/bin/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_${GO_TOOLCHAIN}"
k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

log() { echo "[build-k8s] $*" >&2; }

present() { [[ -x "$bin_dir/$1" ]]; }

all_present() {
  local b
  for b in "${k8s_bins[@]}" etcd kwok pause; do present "$b" || return 1; done
}

if all_present; then
  echo "$bin_dir"
  exit 0
fi

mkdir -p "$bin_dir"
exec 9>"$bin_dir.lock"
flock 9
if all_present; then  # another caller built them while this one waited
  echo "$bin_dir"
  exit 0
fi

export GOTOOLCHAIN="$GO_TOOLCHAIN" GOFLAGS="-mod=mod" CGO_ENABLED=0
# Two cores and about 2 GiB peak: one package at a time keeps memory flat
# without costing much wall time on a machine this size.
export GOMAXPROCS="${GOMAXPROCS:-2}"
work="$(mktemp -d "${TMPDIR:-/tmp}/trimtab-k8sbuild.XXXXXX")"
trap 'rm -rf "$work"' EXIT

write_module() {
  local minor="${KUBE_VERSION#v1.}"
  local staging_version="v0.${minor}"
  local upstream_mod
  upstream_mod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "module trimtab.local/k8sbuild"
    echo
    echo "go 1.26.0"
    echo
    echo "godebug default=go1.26"
    echo
    echo "require k8s.io/kubernetes ${KUBE_VERSION}"
    echo
    echo "replace ("
    # Every staging module k8s.io/kubernetes replaces with a local path is
    # published as v0.<minor>; pin each one to the matching version.
    sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/src/.*#\1#p' "$upstream_mod" \
      | while read -r m; do echo "	$m => $m ${staging_version}"; done
    echo ")"
  } > "$work/go.mod"
  cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
}

version_ldflags() {
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local pkg flags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=${KUBE_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor}"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date}"
  done
  echo "-s -w$flags"
}

# install_built NAME: move a finished build from its temporary name into the cache.
install_built() { mv "$bin_dir/.$1.partial" "$bin_dir/$1"; }

build_kubernetes() {
  local missing=() b
  for b in "${k8s_bins[@]}"; do present "$b" || missing+=("$b"); done
  ((${#missing[@]})) || return 0
  write_module
  log "resolving k8s.io/kubernetes ${KUBE_VERSION} modules"
  (cd "$work" && go mod tidy >&2)
  local ldflags; ldflags="$(version_ldflags)"
  for b in "${missing[@]}"; do
    log "building $b (${KUBE_VERSION}, $(go version | awk '{print $3}'))"
    local t0=$SECONDS
    (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$bin_dir/.$b.partial" "k8s.io/kubernetes/cmd/$b")
    install_built "$b"
    log "built $b in $((SECONDS - t0)) s"
  done
}

build_kwok() {
  present kwok && return 0
  log "building kwok ${KWOK_VERSION}"
  local t0=$SECONDS
  mkdir -p "$work/kwok"
  GOBIN="$work/kwok" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  mv "$work/kwok/kwok" "$bin_dir/.kwok.partial"
  install_built kwok
  log "built kwok in $((SECONDS - t0)) s"
}

build_etcd() {
  present etcd && return 0
  log "building etcd ${ETCD_VERSION}"
  local t0=$SECONDS dir="$work/etcd"
  mkdir -p "$dir"
  cat > "$dir/go.mod" <<GOMOD
module trimtab.local/etcdbuild

go 1.26.0

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
GOMOD
  # The same entry point as etcd's own main package, which lives in a module that
  # cannot be installed by version (it replaces its siblings with local paths).
  cat > "$dir/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod tidy >&2 && go build -trimpath -ldflags "-s -w" -o "$bin_dir/.etcd.partial" .)
  install_built etcd
  log "built etcd in $((SECONDS - t0)) s"
}

# The pod sandbox's pause binary, static, from the pinned Kubernetes source (nothing is
# pulled: the local nodes' containerd gets it as a locally built image).
build_pause() {
  present pause && return 0
  local src
  src="$(cd "$work" && go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/build/pause"
  local tag; tag="$(sed -nE 's/^TAG \?= //p' "$src/Makefile")"
  log "building pause ${tag} with gcc"
  gcc -Os -Wall -Werror -static -DVERSION="v${tag}" -o "$bin_dir/.pause.partial" "$src/linux/pause.c"
  install_built pause
}

start=$SECONDS
build_kubernetes
build_pause
build_etcd
build_kwok
log "cold build finished in $((SECONDS - start)) s into $bin_dir"
echo "$bin_dir"
