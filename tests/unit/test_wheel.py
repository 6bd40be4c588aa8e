"""The wheel the image installs (Dockerfile) carries every file the package reads at
run time, not only its Python modules, and nothing of the development tools, which are
a distribution of their own (hack/devtools) that adds its commands to the CLI."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _wheel(source: pathlib.Path, out: pathlib.Path, pattern: str, *parts: str) -> zipfile.ZipFile:
    """The wheel of a clean copy of `parts` of `source`, as the Dockerfile copies them:
    a build in the checkout would leave a build/ folder whose stale files the next
    build would pack."""
    tree = out / "src"
    tree.mkdir()
    for part in parts:
        if (source / part).is_dir():
            shutil.copytree(source / part, tree / part, ignore=_SKIP)
        else:
            shutil.copy(source / part, tree / part)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(tree), "-w", str(out)],
        check=True,
    )
    (wheel,) = out.glob(pattern)
    return zipfile.ZipFile(wheel)


_SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")


def test_the_wheel_carries_the_lua_scripts_and_no_development_tools(
    tmp_path: pathlib.Path,
) -> None:
    names = set(
        _wheel(
            ROOT, tmp_path, "trimtab-*.whl", "pyproject.toml", "README.md", "operator"
        ).namelist()
    )
    lua = {p.name for p in (ROOT / "operator" / "trimtab" / "queue" / "lua").glob("*.lua")}
    assert {f"trimtab/queue/lua/{name}" for name in lua} <= names
    assert "trimtab/py.typed" in names
    assert "trimtab/sim/server.py" in names  # the simulator is part of the product
    assert not any(n.startswith(("tests/", "hack/", "trimtab_dev/")) for n in names)
    assert not any(n.startswith(("trimtab/devcluster", "trimtab/demo")) for n in names)


def test_the_development_tools_carry_their_data_and_plug_into_the_cli(
    tmp_path: pathlib.Path,
) -> None:
    wheel = _wheel(
        ROOT / "hack" / "devtools", tmp_path, "trimtab_dev-*.whl", "pyproject.toml", "trimtab_dev"
    )
    names = set(wheel.namelist())
    assert "trimtab_dev/devcluster/kwok-stages.yaml" in names
    assert not any(n.startswith("trimtab/") for n in names)
    (points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "[trimtab.commands]\ndev = trimtab_dev.plugin:register" in wheel.read(points).decode()
