#!/usr/bin/env bash
# Builds the project's image, ghcr.io/trimtab/trimtab:<chart appVersion> (the reference the
# chart renders by default), from the Dockerfile, with no Docker daemon and nothing pulled
# from a container registry, and prints the path of a docker-archive tar holding it under
# that full reference, ready for `ctr -n k8s.io images import`.
#
# - The base: a local stand-in for python:3.11-slim. debootstrap --variant=minbase builds
#   Debian bookworm with its python3 (3.11); pip, setuptools and wheel go into /usr/local
#   from Debian's own wheels, so the Dockerfile's pip can install there and uninstall
#   itself, as in the official image. umoci packs it as an OCI layout. It is cached, keyed
#   by a digest of this script's base-building functions, the suite and the package list.
# - The image: buildah bud (chroot isolation, host network, no daemon) builds the
#   Dockerfile with --build-arg BASE=localhost/trimtab/python-base:<tag> and --pull=never,
#   on throw-away storage under the cache directory. Its RUN steps install the wheel's
#   dependencies from PyPI (unpinned: whatever PyPI has when the image is built). The
#   archive is cached, keyed by the base's key, the image reference, and pyproject.toml,
#   README.md, the Dockerfile and every file under operator/ that git tracks or would
#   track (the build context is exactly those files, so stray build output never enters).
#
# A second run with the same inputs builds nothing. Builds run under a lock, so concurrent
# callers wait for one build; each builds into a temporary name that is renamed into place
# at the end, so an interrupted build never leaves a half-built cache entry. Builds run in
# a private mount namespace, so their mounts (debootstrap's /proc and /sys, buildah's
# overlays) die with it, even when a build is killed; /var/lib is overlaid there, so the
# blob-info cache that buildah and skopeo write to /var/lib/containers/cache never
# reaches the host. Building needs root (debootstrap, chroot, buildah's chroot
# isolation); a cached archive is printed without it.
#
# Usage: hack/build-image.sh            prints the path of the image's docker-archive tar
# Env:   TRIMTAB_CACHE_DIR              cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab);
#                                       images live under its images/
#        TRIMTAB_IMAGE                  the reference to build (default: the chart's
#                                       image.repository and appVersion)
#        TRIMTAB_DEBIAN_MIRROR          Debian mirror for the base (default: http://deb.debian.org/debian)
#        TRIMTAB_BUILD_CA_BUNDLE        CA bundle mounted over the image's for RUN steps only,
#                                       so pip trusts what the host trusts, e.g. a TLS-inspecting
#                                       proxy (default: /etc/ssl/certs/ca-certificates.crt when
#                                       present; empty: none). It is never committed.
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${TRIMTAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trimtab}"
images_dir="$cache_root/images"

build_log="$images_dir/build.log"  # the last build's whole output

log() { echo "[build-image] $*" >&2; }
die() { log "error: $*"; exit 1; }

# quietly WHAT CMD...: run CMD with its output in the build log; on failure show its end.
quietly() {
  local what="$1"
  shift
  "$@" >>"$build_log" 2>&1 || { tail -n 30 "$build_log" >&2; die "$what failed (whole log: $build_log)"; }
}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; }
case "${1-}" in
  "") ;;
  -h | --help) usage; exit 0 ;;
  *) log "unexpected argument: $1"; usage; exit 2 ;;
esac

# --- the base: a local python:3.11-slim -------------------------------------------------

base_suite=bookworm
base_python=3.11
base_packages=(python3 python-is-python3 python3-pip-whl python3-setuptools-whl
  python3-wheel-whl passwd ca-certificates netbase tzdata)
base_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# in_chroot ROOTFS CMD...: run CMD in ROOTFS with a clean environment (the host's PIP_*
# settings, for one, must not leak in).
in_chroot() {
  local rootfs="$1"
  shift
  env -i PATH="$base_path" HOME=/root LANG=C.UTF-8 chroot "$rootfs" "$@"
}

# base_rootfs DIR: debootstrap the base into DIR and make it behave like python:3.11-slim
# for what the Dockerfile does.
base_rootfs() {
  local rootfs="$1" mirror="${TRIMTAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  local includes
  includes="$(IFS=,; echo "${base_packages[*]}")"
  log "debootstrap $base_suite minbase with $includes (a few minutes)"
  quietly debootstrap debootstrap --variant=minbase --include="$includes" "$base_suite" "$rootfs" "$mirror"
  # Not externally managed (PEP 668), like the official image: pip installs into
  # /usr/local. pip, setuptools and wheel come from Debian's wheels, so the pip that the
  # Dockerfile later uninstalls is one pip installed, not one dpkg owns.
  rm -f "$rootfs/usr/lib/python$base_python/EXTERNALLY-MANAGED"
  local wheels=/usr/share/python-wheels pip_whl pip_version
  pip_whl="$(cd "$rootfs$wheels" && echo pip-*.whl)"
  quietly "pip install" in_chroot "$rootfs" python3 "$wheels/$pip_whl/pip" install --no-index \
    --find-links "$wheels" --no-cache-dir --disable-pip-version-check pip setuptools wheel
  quietly "dpkg --purge" in_chroot "$rootfs" dpkg --purge python3-pip-whl python3-setuptools-whl python3-wheel-whl
  pip_version="$(in_chroot "$rootfs" python -m pip --version)"
  log "base: $pip_version"
  [[ -x "$rootfs/usr/sbin/useradd" && -x "$rootfs/usr/sbin/groupadd" ]] || die "base lacks useradd/groupadd"
  base_slim "$rootfs"
}

# base_slim DIR: what debian:bookworm-slim leaves out, now and for later apt installs.
base_slim() {
  local rootfs="$1"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/trimtab-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
  find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/*
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old
  find "$rootfs/var/cache/apt" "$rootfs/var/log" -type f -delete
  rm -rf "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/root/.cache
  # debootstrap copied the host's; runtimes mount their own over these.
  : >"$rootfs/etc/resolv.conf"
  : >"$rootfs/etc/hostname"
}

# base_pack ROOTFS LAYOUT TAG: pack ROOTFS as one layer into a new OCI layout.
base_pack() {
  local rootfs="$1" layout="$2" tag="$3" version
  version="$(in_chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')"
  tar --numeric-owner --xattrs --xattrs-include='*' --exclude='./dev/*' --exclude='./proc/*' \
    --exclude='./sys/*' -C "$rootfs" -cf "$rootfs.tar" .
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci raw add-layer --image "$layout:$tag" \
    --history.created_by "debootstrap --variant=minbase $base_suite, python $version" "$rootfs.tar"
  umoci config --image "$layout:$tag" --config.env "PATH=$base_path" --config.env LANG=C.UTF-8 \
    --config.env "PYTHON_VERSION=$version" --config.cmd python3 \
    --config.label "org.opencontainers.image.description=Debian $base_suite minbase with Python $version, a local stand-in for python:$base_python-slim"
  umoci gc --layout "$layout"
  rm -f "$rootfs.tar"
}

base_key="$({ declare -f in_chroot base_rootfs base_slim base_pack
  echo "$base_suite $base_python $base_path ${base_packages[*]}"; } | sha256sum | cut -c1-16)"
base_tag="$base_python-$base_suite-$base_key"
base_ref="localhost/trimtab/python-base:$base_tag"
base_layout="$images_dir/python-base/$base_tag"

# --- the image --------------------------------------------------------------------------

# chart_ref: the chart's default image, image.repository:appVersion.
chart_ref() {
  local chart="$root/charts/trimtab" repository version
  repository="$(awk '/^image:/ {i = 1; next} /^[^ #]/ {i = 0}
    i && $1 == "repository:" {print $2; exit}' "$chart/values.yaml")"
  version="$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2; exit}' "$chart/Chart.yaml")"
  [[ -n "$repository" && -n "$version" ]] || die "cannot read image.repository/appVersion from $chart"
  echo "$repository:$version"
}
image_ref="${TRIMTAB_IMAGE:-$(chart_ref)}"
image_name="${image_ref%:*}"
image_tag="${image_ref##*:}"
[[ "$image_tag" != */* && "$image_ref" == *:* ]] || die "TRIMTAB_IMAGE must be REPOSITORY:TAG, got $image_ref"

# source_files: the wheel's inputs and the Dockerfile, relative to the repository, sorted;
# the build context holds exactly these.
source_files() {
  { printf '%s\n' pyproject.toml README.md Dockerfile
    git -C "$root" ls-files -co --exclude-standard operator; } \
    | (cd "$root" && while IFS= read -r f; do [[ -f "$f" ]] && echo "$f"; done) | LC_ALL=C sort -u
}

# image_key DIR < FILES: digest of FILES (one a line, relative to DIR) with the base's key,
# the reference and how the image is built.
image_key() {
  local dir="$1"
  { echo "$base_key $image_ref"
    declare -f build_image
    (cd "$dir" && tr '\n' '\0' | xargs -0 sha256sum --); } | sha256sum | cut -c1-16
}

archive_for() { echo "$images_dir/${image_name##*/}/$image_tag-$1.tar"; }

# build_image WORK CONTEXT: buildah bud the context on throw-away storage under WORK, then
# write the image to WORK/image.tar, a docker-archive with its full reference.
build_image() {
  local work="$1" context="$2"
  local bh=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver overlay)
  local ca="${TRIMTAB_BUILD_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}" mounts=()
  [[ -n "$ca" && -f "$ca" ]] && mounts=(--volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro")
  # skopeo, not buildah pull, which names an oci: image after its path. --tmpdir: its
  # default is /var/tmp, whatever TMPDIR says.
  quietly "skopeo copy" skopeo --tmpdir "$TMPDIR" copy "oci:$base_layout:$base_tag" \
    "containers-storage:[overlay@$work/storage+$work/run]$base_ref"
  log "buildah bud $image_ref from $base_ref"
  quietly "buildah bud" "${bh[@]}" bud --isolation chroot --network host --pull=never \
    --layers=false --force-rm "${mounts[@]}" --build-arg "BASE=$base_ref" --tag "$image_ref" "$context"
  quietly "buildah push" "${bh[@]}" push "$image_ref" "docker-archive:$work/image.tar:$image_ref"
  log "image: $("${bh[@]}" images --noheading --format '{{.Size}}' "$image_ref"), archive: $(du -h "$work/image.tar" | cut -f1)"
}

# prune DIR KEEP [find args...]: delete all but the KEEP newest entries matching in DIR.
prune() {
  local dir="$1" keep="$2"
  shift 2
  find "$dir" -mindepth 1 -maxdepth 1 "$@" -printf '%T@ %p\n' | sort -rn | tail -n +"$((keep + 1))" \
    | cut -d' ' -f2- | while IFS= read -r old; do log "pruning $old"; rm -rf "$old"; done
}

# unmount_under DIR: unmount whatever is still mounted below DIR, deepest first.
unmount_under() {
  awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r \
    | while read -r m; do umount -l "$m" || true; done
}

# cleanup WORK: unmount what the build left mounted, then delete WORK in the background,
# detached (no lock, no output): deleting a build's ~17,000 files took 40 s here on a busy
# disk, as long as the rest of a build.
cleanup() {
  local work="$1" trash="$images_dir/.trash.${1##*.}"
  unmount_under "$work"
  [[ -z "${var_lib_overlaid-}" ]] || umount -l /var/lib
  mv "$work" "$trash"
  setsid rm -rf --one-file-system "$trash" </dev/null >/dev/null 2>&1 9>&- &
}

# --- main -------------------------------------------------------------------------------

git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "$root is not a git work tree"
if [[ -z "${_TRIMTAB_BUILD_IMAGE_NS:-}" ]]; then
  files="$(source_files)"
  key="$(image_key "$root" <<<"$files")"
  archive="$(archive_for "$key")"
  if [[ -f "$archive" ]]; then
    echo "$archive"
    exit 0
  fi
  [[ $(id -u) -eq 0 ]] || die "building the image needs root (debootstrap, chroot, buildah's chroot isolation); run it with sudo"
  for tool in debootstrap:debootstrap buildah:buildah umoci:umoci skopeo:skopeo chroot:coreutils \
      unshare:util-linux flock:util-linux mount:mount git:git; do
    command -v "${tool%%:*}" >/dev/null \
      || die "${tool%%:*} is missing: install Debian package ${tool##*:} (hack/install-deps.sh)"
  done
  # Everything from here on runs in a private mount namespace: mounts made there (debootstrap's,
  # the /var/lib overlay) vanish with it, even when the build is killed.
  _TRIMTAB_BUILD_IMAGE_NS=1 exec unshare --mount --propagation private -- "$BASH" "${BASH_SOURCE[0]}"
fi

mkdir -p "$images_dir/python-base" "$images_dir/${image_name##*/}"
exec 9>"$images_dir/.lock"
flock 9
start=$SECONDS
# Holding the lock, no other build is running: work directories left are from killed builds.
find "$images_dir" -mindepth 1 -maxdepth 1 -name '.work.*' -exec rm -rf --one-file-system {} +
# ... and trash that no cleanup has touched for a while (one may still be deleting it).
find "$images_dir" -mindepth 1 -maxdepth 1 -name '.trash.*' -mmin +10 \
  -exec rm -rf --one-file-system {} + 2>/dev/null || true
work="$(mktemp -d "$images_dir/.work.XXXXXX")"
trap 'cleanup "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir "$work/tmp"
export TMPDIR="$work/tmp"

context="$work/context"
mkdir -p "$context"
files="$(source_files)"
tar -C "$root" -cf - --no-recursion -T - <<<"$files" | tar -C "$context" -xf -
# The key of what is built, even if the tree changes meanwhile.
key="$(image_key "$context" < <(cd "$context" && find . -type f -printf '%P\n' | LC_ALL=C sort))"
archive="$(archive_for "$key")"
if [[ -f "$archive" ]]; then  # another caller built it while this one waited
  echo "$archive"
  exit 0
fi

cache_real="$(realpath -m "$cache_root")"
if [[ "$cache_real/" == /var/lib/* ]]; then
  log "warning: cache under /var/lib, so /var/lib is not overlaid: buildah writes /var/lib/containers/cache"
else
  mkdir -p "$work/var-lib/upper" "$work/var-lib/work"
  mount -t overlay overlay \
    -o "lowerdir=/var/lib,upperdir=$work/var-lib/upper,workdir=$work/var-lib/work" /var/lib
  var_lib_overlaid=1
fi

: >"$build_log"
log "building (whole log: $build_log)"
if [[ ! -d "$base_layout" ]]; then
  t0=$SECONDS
  base_rootfs "$work/rootfs"
  base_pack "$work/rootfs" "$work/base" "$base_tag"
  mv "$work/base" "$base_layout"
  prune "$images_dir/python-base" 2 -type d
  log "built $base_ref in $((SECONDS - t0)) s"
fi

t0=$SECONDS
build_image "$work" "$context"
mv "$work/image.tar" "$archive"
prune "$(dirname "$archive")" 3 -name '*.tar'
log "built $image_ref in $((SECONDS - t0)) s ($((SECONDS - start)) s in all) into $archive"
echo "$archive"
