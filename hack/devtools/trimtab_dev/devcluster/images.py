"""Tiny container images built locally, as docker-archive tarballs: no registry, no pull.

The real nodes' containerd needs a pod sandbox image (the pause binary built by
hack/build-k8s.sh) and the tests want a small image with a shell. A docker-archive is
a tar of one uncompressed layer tar, an image config and a manifest naming the image
reference; `ctr images import` unpacks it. Building one is pure: files in, bytes out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import time
from typing import Any

PAUSE_REPOSITORY = "localhost/trimtab/pause"


@dataclasses.dataclass(frozen=True)
class File:
    """One entry of the image's only layer: a file (`data`) or a symlink (`link`)."""

    path: str
    data: bytes = b""
    mode: int = 0o755
    link: str = ""


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    user: str = ""
    env: tuple[str, ...] = ("PATH=/bin",)


def _add(tar: tarfile.TarFile, name: str, data: bytes, *, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def layer(files: list[File]) -> bytes:
    """An uncompressed layer tar with `files` and the directories above them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({p for f in files for p in _parents(f.path)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for f in files:
            if f.link:
                info = tarfile.TarInfo(f.path.lstrip("/"))
                info.type, info.linkname = tarfile.SYMTYPE, f.link
                tar.addfile(info)
            else:
                _add(tar, f.path.lstrip("/"), f.data, mode=f.mode)
    return buf.getvalue()


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _config(layer_digest: str, config: ImageConfig) -> dict[str, Any]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)),
        "config": {
            "Entrypoint": list(config.entrypoint),
            "Cmd": list(config.cmd) or None,
            "User": config.user,
            "Env": list(config.env),
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
    }


def docker_archive(reference: str, files: list[File], config: ImageConfig) -> bytes:
    """A docker-archive (as `docker save` writes it) of a one-layer image."""
    layer_bytes = layer(files)
    layer_digest = hashlib.sha256(layer_bytes).hexdigest()
    config_bytes = json.dumps(_config(layer_digest, config), sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    manifest = [
        {"Config": config_name, "RepoTags": [reference], "Layers": [f"{layer_digest}/layer.tar"]}
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, f"{layer_digest}/layer.tar", layer_bytes)
        _add(tar, config_name, config_bytes)
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    return buf.getvalue()


def pause_reference(version_output: str) -> str:
    """The sandbox image's reference from `pause -v` ("pause.c v3.10.2")."""
    tag = version_output.rsplit(maxsplit=1)[-1].removeprefix("v")
    return f"{PAUSE_REPOSITORY}:{tag}"


def pause_archive(reference: str, binary: bytes) -> bytes:
    return docker_archive(
        reference, [File("/pause", binary)], ImageConfig(("/pause",), user="65535")
    )
