"""The HTTP API's authentication and authorization against the real apiserver: tokens
are ServiceAccount tokens the apiserver issued (TokenReview), and access is what the
chart's viewer, submitter and reviewer ClusterRoles grant through ordinary
RoleBindings (SubjectAccessReview). A token of namespace A is refused on namespace B,
and a token without the review verb cannot approve."""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from playwright import async_api as pw

from tests.harness import api_server, chart, runtime, samples
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.kube import objects
from trimtab.sdk import Client, http_client
from trimtab_dev.devcluster import binaries, layout

pytestmark = pytest.mark.integration

RBAC = "rbac.authorization.k8s.io/v1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCHEMA = {
    "type": "object",
    "properties": {"confidence": {"type": "number", "minimum": 0, "maximum": 0.5}},
    "required": ["confidence"],
}
REVIEWED = {
    "defaultPool": "p",
    "steps": [{"name": "a", "prompt": "hi", "output": {
        "schema": SCHEMA, "minConfidence": {"field": "confidence", "threshold": 0.9}}}],
}  # fmt: skip


@pytest.fixture(scope="module")
def roles(kube: objects.ObjectStore) -> dict[str, str]:
    """The chart's API ClusterRoles, applied: role -> ClusterRole name."""
    found = chart.objects(chart.helm_binary())
    names = {}
    for role in ("viewer", "submitter", "reviewer"):
        obj = chart.find(found, "ClusterRole", f"trimtab-{role}")
        kube.apply(obj)
        names[role] = obj["metadata"]["name"]
    return names


def _token(lay: layout.Layout, namespace: str, account: str) -> str:
    kubectl = str(binaries.ensure_built() / "kubectl")
    made = chart.run([kubectl, "create", "token", account, "-n", namespace], lay.kubeconfig)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def _grant(kube: objects.ObjectStore, namespace: str, account: str, cluster_role: str) -> None:
    kube.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": namespace}})  # fmt: skip
    kube.apply({
        "apiVersion": RBAC, "kind": "RoleBinding",
        "metadata": {"name": f"{account}-{cluster_role}", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    })  # fmt: skip


@pytest.fixture
def other_namespace(kube: objects.ObjectStore) -> Iterator[str]:
    name = f"t-api-b-{uuid.uuid4().hex[:6]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete("v1", "Namespace", name)


@pytest.fixture
def tokens(
    cluster: layout.Layout, kube: objects.ObjectStore, roles: dict[str, str], namespace: str
) -> dict[str, str]:
    """ServiceAccounts of `namespace`, each bound there to one of the chart's roles."""
    out = {}
    for role, cluster_role in roles.items():
        _grant(kube, namespace, role, cluster_role)
        out[role] = _token(cluster, namespace, role)
    return out


@pytest.fixture
def api(cluster: layout.Layout, redis_url: str, tmp_path: pathlib.Path) -> Iterator[str]:
    with api_server.running_api(
        redis_url, tmp_path / "api.log", kubeconfig=str(cluster.kubeconfig)
    ) as url:
        yield url


@pytest.fixture
async def http(api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        yield client


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _publish(sdk: Client, namespace: str, name: str, spec: dict[str, Any]) -> None:
    await sdk.publish(namespace, name, awf.AgentWorkflowSpec.model_validate(spec))


SIMPLE = {"defaultPool": "p", "steps": [{"name": "a", "prompt": "hi"}]}


async def test_calls_without_a_token_the_cluster_accepts_are_refused_with_401(
    http: httpx.AsyncClient, namespace: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
        response = await http.get(f"/v1/namespaces/{namespace}/runs", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert "token" in response.json()["error"]


async def test_a_token_of_namespace_a_is_refused_on_namespace_b(
    http: httpx.AsyncClient, sdk: Client, tokens: dict[str, str], namespace: str,
    other_namespace: str,
) -> None:  # fmt: skip
    await _publish(sdk, namespace, "wf", SIMPLE)
    await _publish(sdk, other_namespace, "wf", SIMPLE)
    submitter = _as(tokens["submitter"])
    mine = await http.post(f"/v1/namespaces/{namespace}/workflows/wf/runs", json={},
                           headers=submitter)  # fmt: skip
    assert mine.status_code == 201, mine.text
    assert (await http.get(mine.json()["links"]["self"], headers=submitter)).status_code == 200
    theirs = await sdk.submit(other_namespace, "wf", {})
    refused = [
        await http.post(f"/v1/namespaces/{other_namespace}/workflows/wf/runs", json={},
                        headers=submitter),
        await http.get(f"/v1/namespaces/{other_namespace}/runs", headers=submitter),
        await http.get(f"/v1/namespaces/{other_namespace}/runs/{theirs.split('/')[1]}",
                       headers=submitter),
        await http.get(f"/v1/namespaces/{other_namespace}/runs/nosuchrun", headers=submitter),
        await http.get(f"/v1/namespaces/{other_namespace}/reviews", headers=submitter),
    ]  # fmt: skip
    assert [r.status_code for r in refused] == [403] * 5
    assert f"in namespace '{other_namespace}'" in refused[0].json()["error"]
    assert "system:serviceaccount:" in refused[0].json()["error"]


async def test_a_viewer_reads_but_cannot_submit_or_cancel(
    http: httpx.AsyncClient, sdk: Client, tokens: dict[str, str], namespace: str
) -> None:
    await _publish(sdk, namespace, "wf", SIMPLE)
    viewer = _as(tokens["viewer"])
    run = (await sdk.submit(namespace, "wf", {})).split("/")[1]
    assert (
        await http.get(f"/v1/namespaces/{namespace}/runs/{run}", headers=viewer)
    ).status_code == 200
    listed = await http.get(f"/v1/namespaces/{namespace}/runs", headers=viewer)
    assert [r["id"] for r in listed.json()["items"]] == [run]
    submit = await http.post(f"/v1/namespaces/{namespace}/workflows/wf/runs", json={},
                             headers=viewer)  # fmt: skip
    cancel = await http.post(f"/v1/namespaces/{namespace}/runs/{run}/cancel", headers=viewer)
    assert (submit.status_code, cancel.status_code) == (403, 403)
    assert "may not create agentworkflows/runs 'wf'" in submit.json()["error"]
    assert "may not update agentworkflows/runs 'wf'" in cancel.json()["error"]


async def test_only_a_token_with_the_review_verb_can_approve(
    http: httpx.AsyncClient, sdk: Client, tokens: dict[str, str], namespace: str,
    redis_url: str, tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    await _publish(sdk, namespace, "reviewed", REVIEWED)
    sim_cfg = {"seed": 4, "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0}}
    with runtime.running_sim(tmp_path, sim_cfg) as sim:
        spec = runtime.pool_spec(sim)
        cfg = runtime.worker_settings(namespace, "p", spec, redis_url)
        async with runtime.in_process_worker(cfg):
            run = await sdk.submit(namespace, "reviewed", {})
            items: list[Any] = []
            for _ in range(300):
                reviews = await http.get(f"/v1/namespaces/{namespace}/reviews",
                                         headers=_as(tokens["viewer"]))  # fmt: skip
                items = reviews.json()["items"]
                if items:
                    break
                await asyncio.sleep(0.05)
    [entry] = items
    assert entry["run"] == run
    path = f"/v1/namespaces/{namespace}/reviews/{entry['id']}/approve"
    for role in ("viewer", "submitter"):
        refused = await http.post(path, headers=_as(tokens[role]))
        assert refused.status_code == 403, (role, refused.text)
        assert "may not update agentworkflows/reviews" in refused.json()["error"]
    assert (await sdk.get(run)).status == "review"
    approved = await http.post(path, headers=_as(tokens["reviewer"]))
    assert approved.status_code == 200, approved.text
    assert approved.json()["outcome"] == "ok"
    assert (await sdk.get(run)).status == "succeeded"


async def test_the_sdk_over_http_sends_its_token_and_a_refusal_is_a_permission_error(
    api: str, sdk: Client, tokens: dict[str, str], namespace: str
) -> None:
    await _publish(sdk, namespace, "wf", SIMPLE)
    viewer = Client(api, token=tokens["viewer"])
    submitter = Client(api, token=tokens["submitter"])
    nobody = Client(api, token="")
    try:
        with pytest.raises(http_client.ForbiddenError, match="may not create"):
            await viewer.submit(namespace, "wf", {})
        run = await submitter.submit(namespace, "wf", {})
        assert (await viewer.get(run)).workflow == "wf"
        with pytest.raises(http_client.ForbiddenError, match="Bearer"):
            await nobody.get(run)
    finally:
        for client in (viewer, submitter, nobody):
            await client.aclose()


def _pool_with_status(kube: objects.ObjectStore, namespace: str) -> None:
    """An AgentPool with the figures an operator would have published on its status."""
    doc = samples.pool_doc(namespace, "small", scaling={"targets": {"p95LatencySeconds": 2}})
    kube.apply(doc)
    status = {"replicas": 2, "readyReplicas": 1, "desiredReplicas": 3, "replicaSummary": "1/3",
              "queueDepth": 17, "inFlight": 4, "p95LatencySeconds": 1.25,
              "breaker": "Open"}  # fmt: skip
    kube.patch(API_VERSION, "AgentPool", "small", {"status": status}, namespace=namespace,
               subresource="status")  # fmt: skip


async def test_live_pool_figures_are_the_objects_status_and_follow_rbac(
    http: httpx.AsyncClient, kube: objects.ObjectStore, crds: None, tokens: dict[str, str],
    namespace: str, other_namespace: str,
) -> None:  # fmt: skip
    _pool_with_status(kube, namespace)
    viewer = _as(tokens["viewer"])
    listed = await http.get(f"/v1/namespaces/{namespace}/pools", headers=viewer)
    assert listed.status_code == 200, listed.text
    [pool] = listed.json()["items"]
    assert pool["name"] == "small"
    assert pool["p95TargetSeconds"] == 2
    assert pool["status"]["queueDepth"] == 17
    assert pool["status"]["breaker"] == "Open"
    one = await http.get(f"/v1/namespaces/{namespace}/pools/small", headers=viewer)
    assert one.json()["status"]["replicaSummary"] == "1/3"
    missing = await http.get(f"/v1/namespaces/{namespace}/pools/nosuch", headers=viewer)
    assert missing.status_code == 404
    elsewhere = await http.get(f"/v1/namespaces/{other_namespace}/pools", headers=viewer)
    assert elsewhere.status_code == 403
    # The submitter role reads runs, not the namespace's pools.
    refused = await http.get(f"/v1/namespaces/{namespace}/pools", headers=_as(tokens["submitter"]))
    assert refused.status_code == 403


async def test_the_console_signs_in_with_a_token_and_shows_what_it_may_see(
    api: str, kube: objects.ObjectStore, crds: None, tokens: dict[str, str], namespace: str
) -> None:
    _pool_with_status(kube, namespace)
    async with pw.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page()
        page.set_default_timeout(20_000)
        try:
            await page.goto(f"{api}/console/{namespace}/pools")
            await page.wait_for_url("**/console/login")  # no token yet
            await page.get_by_label("Token").fill(tokens["viewer"])
            await page.get_by_label("Namespace").last.fill(namespace)
            await page.get_by_role("button", name="Sign in").click()
            await page.goto(f"{api}/console/{namespace}/pools")
            row = page.locator("tr[data-pool=small]")
            await pw.expect(row).to_contain_text("1/3")
            await pw.expect(row).to_contain_text("1.25 s / 2.0 s")
            await pw.expect(row).to_contain_text("Open")
            cookie = next(c for c in await page.context.cookies() if c["name"] == "trimtab_token")
            assert cookie["httpOnly"] is True
            assert cookie["sameSite"] == "Strict"
            # The viewer may not start runs: the console says so, as a page.
            await page.goto(f"{api}/console/{namespace}/runs")
            await page.get_by_label("Workflow", exact=True).first.fill("wf")
            await page.get_by_role("button", name="Start").click()
            await pw.expect(page.get_by_role("alert")).to_contain_text("may not create")
        finally:
            await browser.close()
