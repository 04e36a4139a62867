import os

import pytest


@pytest.fixture
def job_with_files(client, pipeline, embedded):
    job = client.post("/v1/jobs", json=pipeline).json()
    stage_dir = embedded.artifacts_root / job["stages"][0]["dir"]
    (stage_dir / "weights").mkdir(parents=True)
    (stage_dir / "weights" / "best.pt").write_bytes(bytes(range(256)) * 4)
    (stage_dir / "results.csv").write_text("epoch,time\n1,2.5\n")
    (embedded.home / "outside.txt").write_text("do not serve")
    os.symlink(embedded.home / "outside.txt", stage_dir / "escape.txt")
    return job


def test_list_artifacts(client, job_with_files):
    listing = client.get(f"/v1/jobs/{job_with_files['id']}/artifacts").json()
    assert [(a["path"], a["size"]) for a in listing["items"]] == [
        ("01-train/results.csv", 17),
        ("01-train/weights/best.pt", 1024),
    ]
    assert listing["total_size"] == 1041
    assert listing["items"][0]["url"] == f"/v1/jobs/{job_with_files['id']}/artifacts/01-train/results.csv"


def test_download_with_range(client, job_with_files):
    url = f"/v1/jobs/{job_with_files['id']}/artifacts/01-train/weights/best.pt"
    full = client.get(url)
    assert full.status_code == 200 and full.content == bytes(range(256)) * 4
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == bytes(range(10, 20))
    assert part.headers["content-range"] == "bytes 10-19/1024"


@pytest.mark.parametrize(
    "path",
    [
        "../../../outside.txt",
        "%2e%2e/%2e%2e/%2e%2e/outside.txt",
        "%252e%252e/%252e%252e/%252e%252e/outside.txt",
        "01-train/%252E%252E%252F%252E%252E%252F%252E%252E%252Foutside.txt",
        "01-train/..%c0%af..%c0%afoutside.txt",
        "01-train/escape.txt",
        "..%2F..%2F..%2Foutside.txt",
        "01-train/..%5c..%5c..%5coutside.txt",
    ],
)
def test_paths_cannot_escape(client, job_with_files, path):
    response = client.get(f"/v1/jobs/{job_with_files['id']}/artifacts/{path}")
    assert response.status_code in (400, 404)
    assert b"do not serve" not in response.content


def test_absolute_path_refused(client, job_with_files, embedded):
    response = client.get(f"/v1/jobs/{job_with_files['id']}/artifacts/{embedded.home}/outside.txt")
    assert response.status_code in (400, 404) and b"do not serve" not in response.content


def test_directory_and_missing_are_404(client, job_with_files):
    assert client.get(f"/v1/jobs/{job_with_files['id']}/artifacts/01-train").status_code == 404
    assert client.get(f"/v1/jobs/{job_with_files['id']}/artifacts/01-train/nope.pt").status_code == 404


def test_weights_404_until_a_train_stage_produced_them(client, job_with_files):
    response = client.get(f"/v1/jobs/{job_with_files['id']}/weights")
    assert response.status_code == 404 and "no weights yet" in response.json()["error"]["message"]
