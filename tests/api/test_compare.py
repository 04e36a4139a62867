"""GET /v1/compare over evaluate stages whose results (and metrics.json reports) the tests write, as a worker
would: the changes it returns are what the two stages' numbers imply, and every refusal names its reason."""

from __future__ import annotations

import json

import pytest

from shared.db import session_scope
from shared.models import Job
from shared.states import JobState, StageState, move_job, move_stage

NAMES = ("square", "disc", "bar")
KINDS = ("classification", "localization", "both", "duplicate", "background", "missed")
METRICS = ("precision", "recall", "mAP50", "mAP50-95")


def evaluate_results(stage_dir: str, figures: dict[str, tuple], counts: dict[str, dict[str, int]], split="val"):
    """What worker/stages/evaluate.py stores, and its metrics.json report: ``figures`` name -> (P, R, mAP50,
    mAP50-95), ``counts`` name -> kind -> count (the per-class counts go to the report only)."""
    per_class = [
        {"class_id": i, "name": name, "images": 3, "instances": 5 + i, **dict(zip(METRICS, figures[name], strict=True))}
        for i, name in enumerate(NAMES)
    ]
    overall = {m: round(sum(row[m] for row in per_class) / len(per_class), 6) for m in METRICS}
    errors_overall = {k: {"count": sum(counts[n].get(k, 0) for n in NAMES), "dAP50": 0.01} for k in KINDS}
    breakdown = {
        "iou": 0.5,
        "count_conf": 0.25,
        "background_iou": 0.1,
        "mAP50": overall["mAP50"],
        "overall": errors_overall,
        "per_class": [
            {
                "class_id": i,
                "name": name,
                "instances": 5 + i,
                "mAP50": figures[name][2],
                "errors": {k: {"count": counts[name].get(k, 0), "dAP50": 0.0} for k in KINDS},
            }
            for i, name in enumerate(NAMES)
        ],
    }
    metrics = {"overall": overall, "per_class": per_class}
    report = {"weights": "w.pt", "split": split, **metrics, "error_breakdown": breakdown}
    results = {
        "evaluated_weights": f"{stage_dir.rsplit('/', 1)[0]}/01-train/weights/best.pt",
        "split": split,
        "metrics": metrics,
        "error_breakdown": {"mAP50": breakdown["mAP50"], "overall": errors_overall},
        "localization": None,
        "report": f"{stage_dir}/metrics.json",
    }
    return results, report


FIGURES_A = {"square": (0.5, 0.4, 0.30, 0.20), "disc": (0.9, 0.8, 0.85, 0.60), "bar": (0.2, 0.1, 0.10, 0.05)}
FIGURES_B = {"square": (0.6, 0.5, 0.45, 0.25), "disc": (0.7, 0.7, 0.60, 0.40), "bar": (0.3, 0.2, 0.12, 0.06)}
COUNTS_A = {"square": {"missed": 5, "localization": 2}, "disc": {"missed": 1}, "bar": {"background": 3}}
COUNTS_B = {"square": {"missed": 2, "localization": 4}, "disc": {"missed": 3}, "bar": {"background": 1}}


def finish(job_id: str, embedded, figures=FIGURES_A, counts=COUNTS_A, *, split="val", evaluate_state="succeeded"):
    """Move the job's train stage to succeeded and its evaluate stage to ``evaluate_state``, with results and
    report written as a worker would. Returns the evaluate stage's results."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        train, evaluate = job.stages
        move_job(job, JobState.RUNNING)
        move_stage(train, StageState.RUNNING)
        move_stage(train, StageState.SUCCEEDED)
        train.results = {"weights": f"{train.dir}/weights/best.pt"}
        move_stage(evaluate, StageState.QUEUED)
        move_stage(evaluate, StageState.RUNNING)
        results, report = evaluate_results(evaluate.dir, figures, counts, split)
        if evaluate_state == "succeeded":
            move_stage(evaluate, StageState.SUCCEEDED)
            evaluate.results = results
            folder = embedded.artifacts_root / evaluate.dir
            folder.mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps(report))
            move_job(job, JobState.SUCCEEDED)
        return results


@pytest.fixture
def two_jobs(client, pipeline, embedded):
    a = client.post("/v1/jobs", json=pipeline).json()["id"]
    b = client.post("/v1/jobs", json=pipeline).json()["id"]
    return a, b, finish(a, embedded), finish(b, embedded, FIGURES_B, COUNTS_B)


def test_changes_are_b_minus_a_per_class_and_overall(client, two_jobs) -> None:
    a, b, results_a, results_b = two_jobs
    response = client.get("/v1/compare", params={"a": a, "b": b})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["a"] == {
        "job_id": a,
        "stage_index": 1,
        "stage_name": None,
        "dataset": "tiny",
        "split": "val",
        "weights": f"jobs/{a}/01-train/weights/best.pt",
        "per_class_errors": True,
    }
    assert body["b"]["job_id"] == b and body["notes"] == []
    for metric in METRICS:
        expected_a, expected_b = results_a["metrics"]["overall"][metric], results_b["metrics"]["overall"][metric]
        assert body["overall"][metric]["a"] == expected_a and body["overall"][metric]["b"] == expected_b
        assert body["overall"][metric]["delta"] == pytest.approx(expected_b - expected_a, abs=1e-6)
    assert [row["name"] for row in body["per_class"]] == ["disc", "square", "bar"]  # |dmAP50| .25, .15, .02
    for row in body["per_class"]:
        assert row["instances"] == 5 + NAMES.index(row["name"])
        for metric, a_value, b_value in zip(METRICS, FIGURES_A[row["name"]], FIGURES_B[row["name"]], strict=True):
            assert (row[metric]["a"], row[metric]["b"]) == (a_value, b_value)
            assert row[metric]["delta"] == pytest.approx(b_value - a_value, abs=1e-6)
        for kind in KINDS:  # per-class counts are only in the metrics.json reports
            count_a, count_b = COUNTS_A[row["name"]].get(kind, 0), COUNTS_B[row["name"]].get(kind, 0)
            assert row["errors"][kind] == {"a": count_a, "b": count_b, "delta": count_b - count_a}
    assert body["error_kinds"]["missed"] == {"a": 6, "b": 5, "delta": -1}
    assert body["error_kinds"]["localization"] == {"a": 2, "b": 4, "delta": 2}
    explicit = client.get("/v1/compare", params={"a": f"{a}:1", "b": f"{b}:1"})
    assert explicit.json() == body


def test_a_report_that_is_gone_leaves_the_metrics_and_says_so(client, two_jobs, embedded) -> None:
    a, b, _, results_b = two_jobs
    (embedded.artifacts_root / results_b["report"]).unlink()
    body = client.get("/v1/compare", params={"a": a, "b": b}).json()
    assert body["a"]["per_class_errors"] is True and body["b"]["per_class_errors"] is False
    assert all(row["errors"] is None for row in body["per_class"])
    assert body["per_class"][0]["mAP50"]["delta"] == pytest.approx(-0.25)
    assert body["error_kinds"]["missed"] == {"a": 6, "b": 5, "delta": -1}  # overall counts are in the results
    assert body["notes"] == [
        f"job {b} stage 1: its report {results_b['report']} is gone; per-class error counts left out"
    ]


def test_different_split_or_dataset_is_a_409_naming_each(client, pipeline, embedded) -> None:
    from client.synthetic import make_dataset

    a = client.post("/v1/jobs", json=pipeline).json()["id"]
    b = client.post("/v1/jobs", json=pipeline).json()["id"]
    finish(a, embedded)
    finish(b, embedded, FIGURES_B, COUNTS_B, split="train")
    split = client.get("/v1/compare", params={"a": a, "b": b})
    assert split.status_code == 409
    assert split.json()["error"] == {
        "code": "conflict",
        "message": f"the evaluations are on different splits: a (job {a} stage 1) is on split 'val', "
        f"b (job {b} stage 1) on 'train'",
        "field": "b",
    }
    make_dataset(embedded.datasets_root / "other", train=8, val=4, size=64, seed=2)
    c = client.post("/v1/jobs", json={**pipeline, "dataset": "other"}).json()["id"]
    finish(c, embedded)
    dataset = client.get("/v1/compare", params={"a": a, "b": c})
    assert dataset.status_code == 409
    assert "different datasets" in dataset.json()["error"]["message"]
    assert "'tiny'" in dataset.json()["error"]["message"] and "'other'" in dataset.json()["error"]["message"]


def test_different_class_lists_are_a_409(client, two_jobs) -> None:
    a, b, _, results_b = two_jobs
    with session_scope() as session:
        stage = session.get(Job, b).stages[1]
        results = json.loads(json.dumps(stage.results))
        results["metrics"]["per_class"][2]["name"] = "ring"
        stage.results = results
    refused = client.get("/v1/compare", params={"a": a, "b": b})
    assert refused.status_code == 409
    message = refused.json()["error"]["message"]
    assert "class lists differ (class 2 is 'bar' in a, 'ring' in b)" in message
    assert "[square, disc, bar]" in message and "[square, disc, ring]" in message


def test_a_train_stage_or_an_unfinished_one_is_a_409(client, pipeline, embedded) -> None:
    a = client.post("/v1/jobs", json=pipeline).json()["id"]
    running = client.post("/v1/jobs", json=pipeline).json()["id"]
    finish(a, embedded)
    finish(running, embedded, evaluate_state="running")
    train = client.get("/v1/compare", params={"a": f"{a}:0", "b": a})
    assert train.status_code == 409
    assert train.json()["error"] == {
        "code": "conflict",
        "message": f"stage 0 of job {a} is a train stage, not an evaluate stage",
        "field": "a",
    }
    unfinished = client.get("/v1/compare", params={"a": a, "b": f"{running}:1"})
    assert unfinished.status_code == 409
    assert (
        unfinished.json()["error"]["message"] == f"evaluate stage 1 of job {running} has not succeeded (state running)"
    )
    assert unfinished.json()["error"]["field"] == "b"
    none_done = client.get("/v1/compare", params={"a": a, "b": running})
    assert none_done.status_code == 409
    assert none_done.json()["error"]["message"] == f"job {running} has no succeeded evaluate stage (stage 1 running)"


def test_unknown_jobs_other_owners_jobs_and_missing_stages_are_404(client, client_for, pipeline, embedded) -> None:
    a = client.post("/v1/jobs", json=pipeline).json()["id"]
    finish(a, embedded)
    unknown = client.get("/v1/compare", params={"a": a, "b": "f" * 32})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {"code": "not_found", "message": f"job {'f' * 32} not found", "field": "b"}
    missing = client.get("/v1/compare", params={"a": f"{a}:7", "b": a})
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "not_found",
        "message": f"job {a} has no stage 7 (it has 2)",
        "field": "a",
    }
    owner, stranger = client_for("team-a"), client_for("team-b")
    theirs = owner.post("/v1/jobs", json=pipeline).json()["id"]
    finish(theirs, embedded)
    assert owner.get("/v1/compare", params={"a": theirs, "b": theirs}).status_code == 200
    hidden = stranger.get("/v1/compare", params={"a": theirs, "b": theirs})
    assert hidden.status_code == 404 and hidden.json()["error"]["message"] == f"job {theirs} not found"


@pytest.mark.parametrize("params", [{"a": "job:abc", "b": "job"}, {"a": "job", "b": "a/b"}, {"a": "job"}])
def test_malformed_references_are_422(client, params) -> None:
    response = client.get("/v1/compare", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["field"] == ("b" if params["a"] == "job" else "a")
    if params["a"] == "job:abc":
        assert error["message"] == "a: 'job:abc' is not <job id> or <job id>:<stage index>"


def test_a_token_is_needed_and_the_responses_are_declared(anonymous, app) -> None:
    assert anonymous.get("/v1/compare", params={"a": "x", "b": "y"}).status_code == 401
    operation = app.openapi()["paths"]["/v1/compare"]["get"]
    assert {"200", "401", "404", "409", "422"} <= set(operation["responses"])
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["a"]["required"] and parameters["a"]["schema"]["pattern"]


def test_cli_compare_prints_the_overall_row_then_the_biggest_changes(two_jobs, app, monkeypatch, capsys) -> None:
    from fastapi.testclient import TestClient

    from client import api_client
    from client.cli import main
    from tests.api_clients import new_token

    headers = {"Authorization": f"Bearer {new_token('tester', admin=True, name='cli')}"}
    monkeypatch.setattr(api_client, "_client", lambda: TestClient(app, headers=headers))
    a, b, _, _ = two_jobs
    assert main(["compare", a, f"{b}:1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:3] == [
        f"a: job {a} stage 1, weights jobs/{a}/01-train/weights/best.pt",
        f"b: job {b} stage 1, weights jobs/{b}/01-train/weights/best.pt",
        "on tiny split val",
    ]
    header = lines.index(next(line for line in lines if line.startswith("class")))
    assert lines[header].split()[:3] == ["class", "inst", "mAP50"]
    table = [line.split() for line in lines[header + 1 : header + 5]]
    assert [row[0] for row in table] == ["all", "disc", "square", "bar"]
    assert table[1][:6] == ["disc", "6", "0.850", "->", "0.600", "(-0.250)"]
    square = " ".join(table[2][1:])
    assert square == "5 0.300 -> 0.450 (+0.150) 0.200 -> 0.250 (+0.050) 0.500 -> 0.600 (+0.100) 0.400 -> 0.500 (+0.100)"
    assert "  missed                6 -> 5      (-1)" in out
    assert main(["compare", a, b, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_class"][0]["name"] == "disc"

    assert main(["compare", a, "f" * 32]) == 1
    assert capsys.readouterr().err == f"error: HTTP 404: job {'f' * 32} not found\n"
    assert main(["compare", "job:abc", b]) == 1
    assert capsys.readouterr().err == "error: HTTP 422: a: 'job:abc' is not <job id> or <job id>:<stage index>\n"
    assert main(["compare", f"{a}:0", b]) == 1
    assert "is a train stage, not an evaluate stage" in capsys.readouterr().err
