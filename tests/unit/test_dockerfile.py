"""The Dockerfile's contract with hack/build-image.sh, which builds it without Docker from
a local base: the base is an ARG that defaults to the public python:3.11-slim (so a plain
`docker build .` is unchanged), every stage starts from it, and the image runs `trimtab`
as the non-root user that the chart and the pool builder run it as."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from trimtab.reconcile.agentpool import desired

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.partition(" ") for line in lines if line and not line.startswith("#")]
    return [(word.upper(), rest.strip()) for word, _, rest in pairs]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from + 1 :]


def test_the_base_is_an_arg_that_defaults_to_the_public_image() -> None:
    assert instructions()[0] == ("ARG", "BASE=python:3.11-slim")


def test_every_stage_starts_from_the_base() -> None:
    froms = [rest.split()[0] for word, rest in instructions() if word == "FROM"]
    assert froms == ["${BASE}", "${BASE}"]


def test_the_image_runs_trimtab_as_the_non_root_user() -> None:
    stage = final_stage()
    settings = dict(stage)
    assert settings["USER"] == f"{desired.NONROOT_ID}:{desired.NONROOT_ID}"
    assert json.loads(settings["ENTRYPOINT"]) == ["trimtab"]
    runs = " ".join(rest for word, rest in stage if word == "RUN")
    assert "pip uninstall --yes pip setuptools wheel" in runs


def test_the_local_build_passes_its_base_and_pulls_nothing() -> None:
    script = (ROOT / "hack" / "build-image.sh").read_text()
    assert '--build-arg "BASE=$base_ref"' in script
    assert "--pull=never" in script
