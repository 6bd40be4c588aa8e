"""Finding the pinned control-plane binaries and the project's image, building them on
first use.

The builds live in hack/build-k8s.sh (a throwaway Go module pinned to one Kubernetes
release) and hack/build-image.sh (the Dockerfile, built with buildah on a local base);
each caches its output outside the repository and prints where it is, returning at once
when it is already there.
"""

from __future__ import annotations

import os
import pathlib
import subprocess


class BinariesError(RuntimeError):
    """The control-plane binaries could not be found or built."""


def hack_dir() -> pathlib.Path:
    """The repository's hack/ folder (this package runs from a source checkout)."""
    override = os.environ.get("TRIMTAB_HACK_DIR")
    if override:
        return pathlib.Path(override)
    # hack/devtools/trimtab_dev/devcluster/binaries.py -> repository root
    root = pathlib.Path(__file__).resolve().parents[4]
    candidate = root / "hack"
    if not (candidate / "build-k8s.sh").exists():
        raise BinariesError(
            f"hack/build-k8s.sh not found under {root}; the local cluster runs from a "
            "source checkout (set TRIMTAB_HACK_DIR to point at its hack/ folder)"
        )
    return candidate


def ensure_built() -> pathlib.Path:
    """The directory holding etcd, kube-apiserver, kube-controller-manager,
    kube-scheduler, kubectl and kwok; builds them first if the cache lacks them."""
    script = hack_dir() / "build-k8s.sh"
    result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise BinariesError(f"{script} failed with exit code {result.returncode}")
    return pathlib.Path(result.stdout.strip().splitlines()[-1])


def project_image() -> pathlib.Path:
    """The docker-archive of the project's image as the chart names it, built from the
    Dockerfile if the cache lacks one for the current sources (a few minutes)."""
    script = hack_dir() / "build-image.sh"
    result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise BinariesError(f"{script} failed with exit code {result.returncode}")
    return pathlib.Path(result.stdout.strip().splitlines()[-1])
