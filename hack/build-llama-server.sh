#!/usr/bin/env bash
# Builds llama.cpp's own OpenAI-compatible `llama-server` on CPU, from the llama.cpp tree
# vendored in the PyPI source distribution of llama-cpp-python (the only place this
# machine's registries serve llama.cpp's source from), and caches the binary outside the
# repository, keyed by version and build flags, so a second run builds nothing. The
# integration tests call it as a model server this project did not write.
#
# Usage: hack/build-llama-server.sh    prints the path of the llama-server binary
# Env:   TRIMTAB_CACHE_DIR            cache root (default: ${XDG_CACHE_HOME:-~/.cache}/trimtab)
set -euo pipefail

here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=hack/versions.env
source "$here/versions.env"
: "${LLAMA_CPP_PYTHON_VERSION:?LLAMA_CPP_PYTHON_VERSION must be set in hack/versions.env}"

# The web UI options are off because their defaults download the UI at build time;
# GGML_NATIVE=OFF keeps the binary portable between machines that share the cache.
flags=(
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
)
flags_key="$(printf '%s\n' "${flags[@]}" | sha256sum | cut -c1-8)"
cache_root="${TRIMTAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trimtab}"
bin_dir="$cache_root/bin/llama-server-${LLAMA_CPP_PYTHON_VERSION}_${flags_key}"
if [[ -x "$bin_dir/llama-server" ]]; then
  echo "$bin_dir/llama-server"
  exit 0
fi
mkdir -p "$cache_root/bin"
(
  # Concurrent first uses wait for one build; the one that waited finds the binary.
  flock 9
  [[ -x "$bin_dir/llama-server" ]] && exit 0
  echo "[build-llama-server] building llama-server from llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION} (first use only, ~10 CPU-minutes)" >&2
  work="$bin_dir.partial"
  rm -rf "$work"
  mkdir -p "$work/src"
  # Any pip will do for one download: the project's virtualenv's, else the system's.
  py="$here/../.venv/bin/python"
  [[ -x "$py" ]] || py=python3
  "$py" -m pip download -q --no-deps --no-binary :all: -d "$work" \
    "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}"
  tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work/src" --strip-components=1
  cmake -S "$work/src/vendor/llama.cpp" -B "$work/build" -G Ninja "${flags[@]}" >/dev/null
  cmake --build "$work/build" --target llama-server -j "${LLAMA_BUILD_JOBS:-$(nproc)}" >/dev/null
  strip "$work/build/bin/llama-server"
  mkdir -p "$work/out"
  mv "$work/build/bin/llama-server" "$work/out/"
  # A build interrupted half-way leaves only .partial behind, never a broken binary.
  rm -rf "$bin_dir"
  mv "$work/out" "$bin_dir"
  rm -rf "$work"
) 9>"$bin_dir.lock" >&2
echo "$bin_dir/llama-server"
