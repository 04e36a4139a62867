"""``GET /v1/compare`` and ``stagerun compare`` over two tiny real jobs: one epoch from scratch, then one more
epoch from its weights (``job:<id>``), each evaluated on val by the real worker."""

import json

import pytest

from tests.e2e.checks import tiny_pipeline

pytestmark = pytest.mark.slow

METRICS = ("precision", "recall", "mAP50", "mAP50-95")


@pytest.fixture(scope="module")
def stack(stack_factory):
    return stack_factory("compare")


def test_two_tiny_jobs_compared_per_class(stack):
    first = stack.run_to_success(tiny_pipeline(epochs=1), timeout_s=600)
    second = stack.run_to_success({**tiny_pipeline(epochs=1), "model": f"job:{first['id']}"}, timeout_s=600)
    with stack.client() as client:
        response = client.get("/v1/compare", params={"a": first["id"], "b": f"{second['id']}:1"})
        same = client.get("/v1/compare", params={"a": first["id"], "b": first["id"]}).json()
        train = client.get("/v1/compare", params={"a": f"{first['id']}:0", "b": second["id"]})
    assert response.status_code == 200, response.text
    body = response.json()
    a, b = first["stages"][1]["results"], second["stages"][1]["results"]
    assert body["a"]["weights"] == a["evaluated_weights"] and body["b"]["weights"] == b["evaluated_weights"]
    assert (body["a"]["split"], body["a"]["dataset"]) == ("val", "tiny")
    for metric in METRICS:
        change = body["overall"][metric]
        assert (change["a"], change["b"]) == (a["metrics"]["overall"][metric], b["metrics"]["overall"][metric])
        assert change["delta"] == pytest.approx(change["b"] - change["a"], abs=1e-6)
    rows_a = {row["name"]: row for row in a["metrics"]["per_class"]}
    rows_b = {row["name"]: row for row in b["metrics"]["per_class"]}
    assert sorted(row["name"] for row in body["per_class"]) == sorted(rows_a) == ["bar", "disc", "square"]
    for row in body["per_class"]:
        for metric in METRICS:
            assert (row[metric]["a"], row[metric]["b"]) == (rows_a[row["name"]][metric], rows_b[row["name"]][metric])
    deltas = [row["mAP50"]["delta"] for row in body["per_class"] if row["mAP50"]["delta"] is not None]
    assert deltas == sorted(deltas, key=abs, reverse=True)

    # the per-class error counts are not in the stage results: they come from each stage's metrics.json
    assert "per_class" not in b["error_breakdown"] and body["b"]["per_class_errors"] is True
    report = json.loads((stack.home / "artifacts" / b["report"]).read_text())["error_breakdown"]
    counts = {row["name"]: row["errors"] for row in report["per_class"]}
    for row in body["per_class"]:
        assert {kind: change["b"] for kind, change in row["errors"].items()} == {
            kind: entry["count"] for kind, entry in counts[row["name"]].items()
        }
    assert body["notes"] == []

    assert all(change["delta"] == 0 for change in same["overall"].values())
    assert train.status_code == 409 and "train stage, not an evaluate stage" in train.json()["error"]["message"]

    printed = stack.stagerun("compare", first["id"], second["id"], timeout=120)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("class"))
    assert [line.split()[0] for line in lines[header + 1 : header + 5]] == ["all"] + [
        row["name"] for row in body["per_class"]
    ]
    missing = stack.stagerun("compare", first["id"], "f" * 32, timeout=120)
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: HTTP 404: job {'f' * 32} not found"
