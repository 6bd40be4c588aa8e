"""The wheel the image installs (Dockerfile) carries every file the package reads at
run time, not only its Python modules."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_lua_scripts_and_data_files(tmp_path: pathlib.Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         str(ROOT), "-w", str(tmp_path)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("trimtab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    lua = {p.name for p in (ROOT / "operator" / "trimtab" / "queue" / "lua").glob("*.lua")}
    assert {f"trimtab/queue/lua/{name}" for name in lua} <= names
    assert "trimtab/devcluster/kwok-stages.yaml" in names
    assert "trimtab/py.typed" in names
    assert not any(n.startswith(("tests/", "hack/")) for n in names)
