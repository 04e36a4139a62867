"""A client generated from the live /openapi.json by openapi-python-client works unchanged: it submits a
pipeline, polls the job to success, reads its metrics and downloads its weights (issue 14, the contract)."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.checks import tiny_pipeline

pytestmark = pytest.mark.slow
PACKAGE = "stagerun_generated"


@pytest.fixture(scope="module")
def generated(stack_factory, tmp_path_factory):
    stack = stack_factory("generated")
    folder = tmp_path_factory.mktemp("client")
    schema = folder / "openapi.json"
    schema.write_bytes(httpx.get(f"{stack.url}/openapi.json", timeout=30).content)
    tool = Path(sys.executable).parent / "openapi-python-client"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(tool), "generate", "--path", str(schema), "--meta", "none", "--output-path", str(folder / PACKAGE)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout and "Unable to" not in result.stdout, result.stdout  # every schema
    sys.path.insert(0, str(folder))
    try:
        yield stack, importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_a_generated_client_submits_polls_and_downloads(generated) -> None:
    stack, package = generated
    from stagerun_generated.api.artifacts import download_weights as download
    from stagerun_generated.api.jobs import get_job_v1_jobs_job_id_get as get_job
    from stagerun_generated.api.jobs import get_metrics_v1_jobs_job_id_metrics_get as get_metrics
    from stagerun_generated.api.jobs import submit_job_v1_jobs_post as submit
    from stagerun_generated.models import JobCreate, JobPublic

    client = package.AuthenticatedClient(base_url=stack.url, token=stack.token, raise_on_unexpected_status=True)
    pipeline = tiny_pipeline(epochs=1, cache=False, batch=4)
    job = submit.sync(client=client, body=JobCreate.from_dict(pipeline))
    assert isinstance(job, JobPublic), job
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        current = get_job.sync(job.id, client=client)
        if current.state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    assert current.state == "succeeded", current
    rows = get_metrics.sync(job.id, client=client).rows
    assert [row.epoch for row in rows] == [1]
    weights = download.sync(job.id, client=client)
    assert zipfile.is_zipfile(io.BytesIO(weights.payload.read()))
