"""Exit codes a script can rely on: ``watch`` (and ``submit``/``resume``/``rerun`` with ``--watch``) exit with how the
job ended, 0 succeeded, 1 failed, 3 cancelled, 4 gated; ``status`` only shows a job and exits 0."""

from __future__ import annotations

import pytest

from shared.db import session_scope
from shared.models import Job
from shared.states import (
    JobState,
    StageState,
    move_job,
    move_stage,
    settle_job_after_stage,
    stage_gated,
    stage_succeeded,
)


def end_as(job_id: str, state: str) -> None:
    """Run the job's stages through the state machine to ``state``, as a worker would."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        train, evaluate = job.stages
        move_job(job, JobState.RUNNING)
        move_stage(train, StageState.RUNNING)
        if state == "failed":
            move_stage(train, StageState.FAILED, error="RuntimeError: boom")
            settle_job_after_stage(job, train)
        elif state == "cancelled":
            move_stage(train, StageState.CANCELLED)
            settle_job_after_stage(job, train)
        elif state == "gated":
            stage_gated(job, train, "mAP50 0.1 < 0.5")
        else:
            stage_succeeded(job, train)
            move_stage(evaluate, StageState.RUNNING)
            stage_succeeded(job, evaluate)
        assert job.state == state


@pytest.mark.parametrize(("state", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 3), ("gated", 4)])
def test_watch_exits_with_how_the_job_ended_and_status_with_0(client, pipeline, cli, capsys, state, code) -> None:
    job_id = client.post("/v1/jobs", json=pipeline).json()["id"]
    end_as(job_id, state)
    assert cli(["watch", job_id]) == code
    assert f"job {job_id} (tiny): {state}" in capsys.readouterr().out
    assert cli(["status", job_id]) == 0


@pytest.mark.parametrize(("state", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 3), ("gated", 4)])
def test_submit_resume_and_rerun_watch_exit_the_same(client, pipeline, cli, monkeypatch, tmp_path, state, code) -> None:
    """The job each command starts is queued (no worker here): ``follow`` is made to return it ended."""
    import yaml

    from client import cli as cli_module

    def ended(fetch, interval_s=1.0, out=None):
        return {**fetch(), "state": state}

    monkeypatch.setattr(cli_module, "follow", ended)
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(yaml.safe_dump(pipeline))
    assert cli(["submit", str(spec), "--watch"]) == code
    failed = client.post("/v1/jobs", json=pipeline).json()["id"]
    end_as(failed, "failed")
    assert cli(["resume", failed, "--watch"]) == code
    done = client.post("/v1/jobs", json=pipeline).json()["id"]
    end_as(done, "succeeded")
    assert cli(["rerun", done, "--from-stage", "1", "--watch"]) == code


def test_the_codes_are_in_the_help(cli, capsys) -> None:
    with pytest.raises(SystemExit):
        cli(["--help"])
    text = capsys.readouterr().out
    assert "0  succeeded" in text and "3  cancelled" in text and "4  gated" in text
    with pytest.raises(SystemExit):
        cli(["watch", "--help"])
    assert "1  failed" in capsys.readouterr().out
