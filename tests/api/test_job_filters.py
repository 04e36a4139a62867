"""GET /v1/jobs?tag=&name=&owner=: every tag (an exact tag, not a part of one), a case-insensitive part of the name,
one owner (an admin's filter; anyone else asking for another owner gets an empty list), with count and pages; the
same SQL on PostgreSQL; and ``stagerun jobs``."""

from __future__ import annotations

import pytest

from shared.auth import Principal
from shared.db import session_scope
from shared.models import Job


@pytest.fixture
def jobs_made(client, client_for, pipeline):
    """Five jobs of "tester" (newest last) and one of "team-a"; returns their ids by short name."""
    made = {}
    for key, name, tags in (
        ("alpha", "Alpha one", ["a", "b"]),
        ("alphabet", "alphabet", ["a"]),
        ("beta", "Beta", ["b", "c"]),
        ("gamma", "gamma_%", ["ab"]),
        ("cafe", "Café crème", ["café", "x:y/z+1.0-rc"]),
    ):
        response = client.post("/v1/jobs", json={**pipeline, "name": name, "tags": tags})
        assert response.status_code == 202, response.text
        made[key] = response.json()["id"]
    team = client_for("team-a")
    made["team"] = team.post("/v1/jobs", json={**pipeline, "name": "alpha of team a", "tags": ["a"]}).json()["id"]
    made["team_client"] = team
    return made


def listed(client, **params) -> tuple[list[str], int]:
    response = client.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [job["id"] for job in body["items"]], body["count"]


def test_tags_are_matched_whole_and_all_of_them(client, jobs_made) -> None:
    j = jobs_made
    assert listed(client, tag="a") == ([j["team"], j["alphabet"], j["alpha"]], 3)  # not "ab"
    assert listed(client, tag=["a", "b"]) == ([j["alpha"]], 1)
    assert listed(client, tag=["b", "b"]) == ([j["beta"], j["alpha"]], 2)
    assert listed(client, tag="ab") == ([j["gamma"]], 1)
    assert listed(client, tag="café") == ([j["cafe"]], 1)
    assert listed(client, tag="x:y/z+1.0-rc") == ([j["cafe"]], 1)
    assert listed(client, tag="x") == ([], 0)
    assert listed(client, tag=["c", "a"]) == ([], 0)
    for bad in ('"a"', "a b", "a,b", "", "x" * 65):
        assert client.get("/v1/jobs", params={"tag": bad}).status_code == 422, bad


def test_name_is_a_case_insensitive_part_with_wildcards_taken_literally(client, jobs_made) -> None:
    j = jobs_made
    assert listed(client, name="ALPHA") == ([j["team"], j["alphabet"], j["alpha"]], 3)
    assert listed(client, name="pha o") == ([j["team"], j["alpha"]], 2)
    assert listed(client, name="%") == ([j["gamma"]], 1)
    assert listed(client, name="a_") == ([j["gamma"]], 1)
    assert listed(client, name="crème") == ([j["cafe"]], 1)
    assert listed(client, name="delta") == ([], 0)
    assert client.get("/v1/jobs", params={"name": ""}).status_code == 422


def test_owner_is_an_admins_filter(client, client_for, jobs_made) -> None:
    j, team = jobs_made, jobs_made["team_client"]
    assert listed(client, owner="team-a") == ([j["team"]], 1)
    assert listed(client, owner="tester", tag="a") == ([j["alphabet"], j["alpha"]], 2)
    assert listed(client, owner="nobody") == ([], 0)
    assert listed(team) == ([j["team"]], 1)
    assert listed(team, owner="team-a") == ([j["team"]], 1)
    assert listed(team, owner="tester") == ([], 0)  # not an error: just nothing this token may see
    assert listed(client_for("team-b"), tag="a") == ([], 0)


def test_filters_combine_with_state_count_and_pages(client, jobs_made) -> None:
    j = jobs_made
    client.post(f"/v1/jobs/{j['alpha']}/cancel")
    assert listed(client, tag="a", state="queued") == ([j["team"], j["alphabet"]], 2)
    assert listed(client, tag="b", state="cancelled") == ([j["alpha"]], 1)
    pages = [listed(client, name="a", limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [count for _, count in pages] == [6, 6, 6, 6]
    assert [len(ids) for ids, _ in pages] == [2, 2, 2, 0]
    everyone = [job_id for ids, _ in pages for job_id in ids]
    expected = [j[k] for k in ("team", "cafe", "gamma", "beta", "alphabet", "alpha")]
    assert everyone == expected
    assert listed(client, tag="a", limit=1, offset=1) == ([j["alphabet"]], 3)


def test_the_parameters_are_declared(app) -> None:
    parameters = {p["name"]: p for p in app.openapi()["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert {"state", "tag", "name", "owner", "limit", "offset"} <= set(parameters)
    tag = next(s for s in parameters["tag"]["schema"]["anyOf"] if s.get("type") == "array")
    assert tag["items"]["pattern"] and tag["maxItems"] == 32


def test_cli_jobs_prints_a_table(client, jobs_made, app, monkeypatch, capsys) -> None:
    from fastapi.testclient import TestClient

    from client import api_client
    from client.cli import main
    from tests.api_clients import new_token

    headers = {"Authorization": f"Bearer {new_token('tester', admin=True, name='cli')}"}
    monkeypatch.setattr(api_client, "_client", lambda: TestClient(app, headers=headers))
    j = jobs_made
    client.post(f"/v1/jobs/{j['alpha']}/cancel")
    assert main(["jobs", "--tag", "a", "--tag", "b"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "name", "state", "progress", "created"]
    assert len(lines) == 2 and lines[1].split()[:4] == [j["alpha"], "Alpha", "one", "cancelled"]
    created = client.get(f"/v1/jobs/{j['alpha']}").json()["created_at"]
    assert lines[1].endswith(created.replace("T", " ")[:19])
    assert main(["jobs", "--name", "ALPHA", "--state", "queued", "--limit", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["id", j["team"], "(1"]
    assert lines[1].split()[1:6] == ["alpha", "of", "team", "a", "queued"]
    assert "stage 1/2 train queued: epoch 0/1" in lines[1]
    assert lines[2] == "(1 of 2 jobs; --limit to see more)"
    assert main(["jobs", "--owner", "team-a"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["id", j["team"]]
    assert main(["jobs", "--tag", "a b"]) == 1
    assert capsys.readouterr().err.startswith("error: HTTP 422:")


@pytest.mark.production
def test_the_same_filters_on_postgresql(postgres) -> None:
    from shared.jobs import list_jobs

    rows = [("Alpha one", ["a", "b"], "tester"), ("gamma_%", ["ab"], "tester"), ("Café", ["café"], "tester"),
            ("beta", ["b", "a"], "team-a")]
    with session_scope() as session:
        for name, tags, owner in rows:
            session.add(Job(name=name, tags=tags, state="queued", dataset="d", model="m", spec={}, owner=owner))
    admin, team = Principal("tester", is_admin=True), Principal("team-a")

    def names(principal, **filters) -> tuple[list[str], int]:
        with session_scope() as session:
            found, count = list_jobs(session, principal, None, 50, 0, **filters)
            return sorted(job.name for job in found), count

    assert names(admin, tags=["a"]) == (["Alpha one", "beta"], 2)
    assert names(admin, tags=["a", "b"], owner="team-a") == (["beta"], 1)
    assert names(admin, tags=["ab"]) == (["gamma_%"], 1)
    assert names(admin, tags=["café"]) == (["Café"], 1)
    assert names(admin, name="ALPHA") == (["Alpha one"], 1)
    assert names(admin, name="_%") == (["gamma_%"], 1)
    assert names(admin, name="CAF") == (["Café"], 1)
    assert names(team, owner="tester") == ([], 0)
    assert names(team, tags=["a"]) == (["beta"], 1)
