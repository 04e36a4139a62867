"""The hard-examples route before a mine stage has run (the finished case is in tests/e2e/test_mining.py)."""


def test_unfinished_wrong_type_and_unknown_stages(client, pipeline):
    stages = [pipeline["stages"][0], {"type": "mine", "imgsz": 64}]
    job = client.post("/v1/jobs", json={**pipeline, "stages": stages}).json()
    pending = client.get(f"/v1/jobs/{job['id']}/stages/1/hard-examples")
    assert pending.status_code == 409
    assert pending.json()["error"] == {
        "code": "conflict",
        "message": "mine stage 1 has not finished (state pending)",
        "field": "index",
    }
    train = client.get(f"/v1/jobs/{job['id']}/stages/0/hard-examples")
    assert train.status_code == 409 and "train stage, not a mine stage" in train.json()["error"]["message"]
    missing = client.get(f"/v1/jobs/{job['id']}/stages/2/hard-examples")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "index"
    assert client.get(f"/v1/jobs/{job['id']}/stages/-1/hard-examples").status_code == 422
    assert client.get(f"/v1/jobs/{'0' * 32}/stages/1/hard-examples").status_code == 404
