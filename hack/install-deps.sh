#!/usr/bin/env bash
# Installs the system packages Trimtab's development, tests and demo need on a
# Debian machine: redis-server (run by the tests on loopback, also as sentinels and
# cluster nodes) and redis-tools (redis-cli, which joins the test cluster),
# openssl (cluster PKI), python3-venv; for the local cluster's real node, containerd,
# runc, the CNI plugins (bridge, host-local), iptables, iproute2 and conntrack,
# busybox-static (the real-node tests' small image) and gcc with libc6-dev (the pod
# sandbox's pause binary, built from the pinned Kubernetes source); cmake, ninja-build
# and g++ (llama.cpp's llama-server, the real model server the tests call:
# hack/build-llama-server.sh); for
# building the project's image without Docker or a registry, debootstrap (the local
# Python base), buildah (builds the Dockerfile), umoci and skopeo (OCI layouts and
# archives); chromium (the web console's browser tests drive Debian's own, headless,
# with Playwright: browser downloads are not possible everywhere); postgresql (the run
# history's tests start Debian's server in a directory of their own). Go must already be installed (1.26 pins the
# control-plane build; hack/build-k8s.sh asks the module proxy for that toolchain
# when a different Go is found). Safe to re-run.
set -euo pipefail

packages=(
  redis-server redis-tools openssl python3-venv ca-certificates
  containerd runc containernetworking-plugins iptables iproute2 conntrack busybox-static
  gcc libc6-dev
  cmake ninja-build g++
  debootstrap buildah umoci skopeo
  chromium
  postgresql
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  echo "installing: ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v go >/dev/null || { echo "Go is required (https://go.dev/doc/install)" >&2; exit 1; }
