"""A user's mistake on the command line is one clear line on stderr and a non-zero exit,
never a traceback; none of these reach Redis (nothing listens where they point)."""

from __future__ import annotations

import pathlib

import pytest

from trimtab import cli

NOWHERE = "redis://127.0.0.1:1/0"


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main([*argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trimtab: ")
    assert err.count("\n") == 1, err  # one line
    assert "Traceback" not in err
    return err


@pytest.fixture
def files(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    out = {
        "broken.yaml": "kind: AgentWorkflow\nspec: [unclosed\n",
        "empty.yaml": "",
        "bad.json": "{not json",
        "invalid.yaml": "apiVersion: trimtab.io/v1alpha1\nkind: AgentWorkflow\n"
        "metadata: {name: w}\nspec: {steps: [{name: a}], nonsense: 1}\n",
    }
    for name, text in out.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in out} | {"missing": tmp_path / "missing.json"}


def test_a_missing_or_broken_input_file(
    capsys: pytest.CaptureFixture[str], files: dict[str, pathlib.Path]
) -> None:
    run = ("run", "default/wf", "--redis-url", NOWHERE)
    assert "cannot read it" in _error(capsys, *run, "--input", f"@{files['missing']}")
    assert "not JSON" in _error(capsys, *run, "--input", f"@{files['bad.json']}")


def test_a_workflow_file_that_is_not_yaml_empty_or_invalid(
    capsys: pytest.CaptureFixture[str], files: dict[str, pathlib.Path]
) -> None:
    publish = ("workflow", "publish", "--redis-url", NOWHERE, "-f")
    assert "at line 3: expected" in _error(capsys, *publish, str(files["broken.yaml"]))
    assert "holds no manifest" in _error(capsys, *publish, str(files["empty.yaml"]))
    assert "cannot read" in _error(capsys, *publish, str(files["missing"]))
    assert "is invalid: " in _error(capsys, *publish, str(files["invalid.yaml"]))


@pytest.mark.parametrize(
    "argv",
    [
        ("runs", "get", "default/0123abcd:events"),
        ("runs", "get", "no-slash"),
        ("review", "show", "default/not-an-id"),
        ("review", "approve", "default/1-0; FLUSHALL"),
        ("dlq", "retry", "default/12"),
    ],
)
def test_a_malformed_reference_is_refused_before_any_call(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    assert "is NAMESPACE/ID" in _error(capsys, *argv, "--redis-url", NOWHERE)
