"""The web console in a real browser: Debian's headless Chromium driven by Playwright,
against the real `trimtab api serve` on a real redis-server, with real workers and the
simulator. A person submits a run and watches it finish, approves and edits reviews,
retries a dead letter, cancels a run, and does it by keyboard and at a phone's width.
Screenshots of each page land in the test's directory."""

from __future__ import annotations

import asyncio
import pathlib
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright import async_api as pw

from tests.harness import api_server, runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import wire
from trimtab.sdk import Client

pytestmark = pytest.mark.integration

NS = "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SIM: dict[str, Any] = {
    "seed": 6,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0},
    "models": {"broken": {"name": "broken", "rate_500": 1.0}},
}
SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 0.5},
    },
    "required": ["answer", "confidence"],
}
REVIEWED = {"schema": SCHEMA, "minConfidence": {"field": "confidence", "threshold": 0.9}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


@pytest.fixture
def api(redis_url: str, tmp_path: pathlib.Path) -> Iterator[str]:
    with api_server.running_api(redis_url, tmp_path / "api.log", no_auth=True) as url:
        yield url


@pytest.fixture
async def page(tmp_path: pathlib.Path) -> AsyncIterator[pw.Page]:
    async with pw.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        tab = await context.new_page()
        tab.set_default_timeout(20_000)
        try:
            yield tab
        finally:
            await browser.close()


def _worker(sim: str, redis_url: str, pool: str = "p", model: str = "sim-small") -> Any:
    spec = runtime.pool_spec(sim, model=model)
    return runtime.in_process_worker(runtime.worker_settings(NS, pool, spec, redis_url))


async def _publish(sdk: Client, name: str, steps: list[dict[str, Any]], pool: str = "p") -> None:
    spec = {"defaultPool": pool, "steps": steps}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


async def _status(page: pw.Page, status: str) -> None:
    await pw.expect(page.locator("#run-status")).to_have_text(status)


async def test_submit_a_run_and_watch_it_finish(
    sim: str, redis_url: str, sdk: Client, api: str, page: pw.Page, tmp_path: pathlib.Path
) -> None:
    steps = [{"name": "look", "prompt": "a {{ inputs.q }}"},
             {"name": "think", "prompt": "b {{ inputs.q }}"},
             {"name": "answer", "prompt": "c", "dependsOn": ["look", "think"]}]  # fmt: skip
    await _publish(sdk, "three", steps)
    async with _worker(sim, redis_url):
        await page.goto(f"{api}/console/{NS}/runs")
        await page.get_by_label("Workflow", exact=True).first.fill("three")
        await page.get_by_label("Inputs (a JSON object)").fill('{"q": "where is my order"}')
        await page.get_by_role("button", name="Start").click()
        await page.wait_for_url(f"**/console/{NS}/runs/*")
        await _status(page, "succeeded")
        await pw.expect(page.locator("#events li").last).to_contain_text("run_done succeeded")
    # The DAG: three boxes, the two roots side by side before the join, all done.
    boxes = page.locator("svg g.step")
    await pw.expect(boxes).to_have_count(3)
    assert await page.locator("svg g.step.done").count() == 3
    assert await page.locator("svg path.edge").count() == 2
    await page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    run_id = page.url.rsplit("/", 1)[1]
    assert (await sdk.get(f"{NS}/{run_id}")).inputs == {"q": "where is my order"}
    await page.goto(f"{api}/console/{NS}/runs")
    await pw.expect(page.get_by_role("link", name=run_id)).to_be_visible()
    await page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)


async def _in_review(sdk: Client, run: str) -> str:
    for _ in range(400):
        for item in await sdk.reviews(NS):
            if f"{NS}/{item.run_id}" == run:
                return item.id
        await asyncio.sleep(0.05)
    raise AssertionError(f"{run} never reached review")


async def test_approve_a_review_and_the_run_continues(
    sim: str, redis_url: str, sdk: Client, api: str, page: pw.Page, tmp_path: pathlib.Path
) -> None:
    steps = [{"name": "draft", "prompt": "hi", "output": REVIEWED},
             {"name": "send", "prompt": "send", "dependsOn": ["draft"]}]  # fmt: skip
    await _publish(sdk, "reviewed", steps)
    async with _worker(sim, redis_url):
        run = await sdk.submit(NS, "reviewed", {})
        await _in_review(sdk, run)
        await page.goto(f"{api}/console/{NS}/reviews")
        await page.screenshot(path=str(tmp_path / "reviews.png"), full_page=True)
        await page.get_by_role("button", name=f"Approve draft of run {run}").click()
        await pw.expect(page.get_by_role("status")).to_contain_text("ok")
        await page.goto(f"{api}/console/{NS}/runs/{run.split('/')[1]}")
        await _status(page, "succeeded")
    state = await sdk.get(run)
    assert state.steps["send"].state is wire.StepState.DONE


async def test_an_edit_outside_the_schema_is_refused_and_a_valid_one_continues(
    sim: str, redis_url: str, sdk: Client, api: str, page: pw.Page, tmp_path: pathlib.Path
) -> None:
    await _publish(sdk, "edited", [{"name": "draft", "prompt": "hi", "output": REVIEWED}])
    async with _worker(sim, redis_url):
        run = await sdk.submit(NS, "edited", {"order": 7})
        entry = await _in_review(sdk, run)
        await page.goto(f"{api}/console/{NS}/reviews/{entry}")
        await pw.expect(page.get_by_text('"order": 7')).to_be_visible()  # the run's inputs
        editor = page.get_by_label("Edited output", exact=False)
        await editor.fill('{"answer": "x", "confidence": 0.9}')
        await page.get_by_role("button", name="Approve with this output").click()
        await pw.expect(page.get_by_role("alert")).to_contain_text("schema")
        # The form comes back with the reviewer's text, not the original.
        await pw.expect(editor).to_have_value('{"answer": "x", "confidence": 0.9}')
        await page.screenshot(path=str(tmp_path / "review-edit.png"), full_page=True)
        assert (await sdk.get(run)).status is wire.RunStatus.REVIEW
        await page.get_by_label("Edited output", exact=False).fill(
            '{"answer": "Your order ships today.", "confidence": 0.4}'
        )
        await page.get_by_role("button", name="Approve with this output").click()
        await pw.expect(page.get_by_role("status")).to_contain_text("ok")
        result = await sdk.result(run, timeout=20)
    assert result.outputs["draft"] == {"answer": "Your order ships today.", "confidence": 0.4}


async def test_retry_a_dead_letter_once_the_model_is_back(
    sim: str, redis_url: str, sdk: Client, api: str, page: pw.Page, tmp_path: pathlib.Path
) -> None:
    step = {"name": "call", "prompt": "hi", "retry": {"maxAttempts": 1}}
    await _publish(sdk, "flaky", [step], pool="flaky")
    async with _worker(sim, redis_url, pool="flaky", model="broken"):
        run = await sdk.submit(NS, "flaky", {})
        assert (await sdk.result(run, timeout=20)).status is wire.RunStatus.FAILED
    await page.goto(f"{api}/console/{NS}/deadletters")
    await page.screenshot(path=str(tmp_path / "deadletters.png"), full_page=True)
    async with _worker(sim, redis_url, pool="flaky"):
        await page.get_by_role("button", name=f"Retry call of run {run}").click()
        await pw.expect(page.get_by_role("status")).to_contain_text("resumed")
        result = await sdk.result(run, timeout=20)
    assert result.status is wire.RunStatus.SUCCEEDED


async def test_cancel_a_run_from_its_page(sdk: Client, api: str, page: pw.Page) -> None:
    await _publish(sdk, "stuck", [{"name": "a", "prompt": "hi"}], pool="nobody")
    run = await sdk.submit(NS, "stuck", {})
    await page.goto(f"{api}/console/{NS}/runs/{run.split('/')[1]}")
    await _status(page, "running")
    await page.get_by_role("button", name="Cancel run").click()
    await _status(page, "cancelled")
    await pw.expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert (await sdk.get(run)).status is wire.RunStatus.CANCELLED


async def test_keyboard_first_and_phone_width(sdk: Client, api: str, page: pw.Page) -> None:
    await page.goto(f"{api}/console/{NS}/runs")
    await page.keyboard.press("Tab")
    focused = page.locator(":focus")
    await pw.expect(focused).to_have_text("Skip to content")
    await page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    # Every form field has a label a screen reader announces.
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
                 .filter(e => !(e.labels && e.labels.length)).map(e => e.name)"""
    )
    assert unlabelled == []
    await page.set_viewport_size({"width": 390, "height": 844})
    for section in ("runs", "reviews", "deadletters"):
        await page.goto(f"{api}/console/{NS}/{section}")
        overflow = await page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, section
