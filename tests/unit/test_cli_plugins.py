"""The CLI's development commands: present when the development tools are installed
(as `make install` installs them), and a clear error when they are not."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from trimtab import cli


def test_installed_tools_add_cluster_and_demo() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["cluster", "status"])
    assert args.func.__module__ == "trimtab_dev.cluster_cmd"
    assert parser.parse_args(["demo"]).func.__module__ == "trimtab_dev.demo_cmd"


def test_without_the_tools_the_commands_say_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in the product's image, where no distribution provides trimtab.commands.
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: [])
    assert cli.main(["cluster", "up", "--real-nodes", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trimtab: error: `trimtab cluster` comes with the development tools")
    assert "make install" in err
    assert cli.main(["demo"]) == 1


def test_the_tools_layout_loads_no_kubernetes_client() -> None:
    # The test session imports it before it points $KUBECONFIG at its cluster, and the
    # client reads $KUBECONFIG once, at its first import.
    code = "import sys, trimtab_dev.devcluster.layout; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
