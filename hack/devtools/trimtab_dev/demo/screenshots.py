"""Screenshots of the web console at the end of a demo, for its report (and the README):
the runs, a finished run of the support workflow, the review queue, the pools and the
workflows, taken in Debian's headless Chromium with Playwright."""

from __future__ import annotations

import pathlib
import shutil

import httpx
from playwright import sync_api

WORKFLOW = "customer-support"


def _finished_run(api_url: str, namespace: str) -> str | None:
    """The newest succeeded run of the support workflow, if any."""
    params: dict[str, str | int] = {"workflow": WORKFLOW, "status": "succeeded", "limit": 1}
    found = httpx.get(f"{api_url}/v1/namespaces/{namespace}/runs", params=params, timeout=10)
    items = found.json().get("items", []) if found.status_code == 200 else []
    return items[0]["id"] if items else None


def take(api_url: str, namespace: str, out: pathlib.Path) -> list[pathlib.Path]:
    """The pages' screenshots in `out`; none when no Chromium is installed."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    console = f"{api_url}/console/{namespace}"
    pages = {"runs": f"{console}/runs", "reviews": f"{console}/reviews",
             "pools": f"{console}/pools", "workflows": f"{console}/workflows"}  # fmt: skip
    run = _finished_run(api_url, namespace)
    if run is not None:
        pages["run"] = f"{console}/runs/{run}"
    taken = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        for name, url in pages.items():
            page.goto(url, wait_until="networkidle")
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=False)
            taken.append(path)
        browser.close()
    return taken
