"""Datasets over HTTP: register a folder or upload a zip; unsafe or oversized input is refused and
leaves nothing behind; a job may name a valid registered dataset of its owner."""

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from client.synthetic import make_dataset


def zip_of(folder: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def upload(client, data: bytes, name: str = "zipped"):
    return client.post("/v1/datasets", files={"file": ("data.zip", data, "application/zip")}, data={"name": name})


def uploads_left(settings) -> list[str]:
    folder = settings.datasets_root / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def tiny_zip(tmp_path) -> bytes:
    make_dataset(tmp_path / "src", train=4, val=2, size=64, seed=2)
    return zip_of(tmp_path / "src", prefix="mydata/")


def test_register_folder_validates_and_profiles(client, tiny_dataset):
    response = client.post("/v1/datasets", json={"path": tiny_dataset})
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert response.headers["Location"] == f"/v1/datasets/{dataset['id']}"
    assert dataset["valid"] is True and dataset["source"] == "folder" and dataset["path"] == "tiny"
    assert dataset["images"] == {"train": 8, "val": 4} and dataset["reference"] == f"dataset:{dataset['id']}"
    profile = dataset["profile"]
    assert [c["name"] for c in profile["classes"]] == ["square", "disc", "bar"]
    assert profile["splits"]["train"]["images"] == 8
    assert "bar" in [c["name"] for c in profile["at_risk"]]  # 2-4 px wide bars
    fetched = client.get(f"/v1/datasets/{dataset['id']}").json()
    assert fetched["profile"] == profile and fetched["validation"]["error_count"] == 0
    listing = client.get("/v1/datasets").json()
    assert listing["count"] == 1 and listing["items"][0]["id"] == dataset["id"] and "profile" not in listing["items"][0]


def test_invalid_folder_is_stored_with_its_report_and_refused_by_jobs(client, embedded, pipeline):
    make_dataset(embedded.datasets_root / "broken", train=2, val=2, size=64, seed=0)
    label = embedded.datasets_root / "broken" / "labels" / "train" / "train_0000.txt"
    label.write_text("7 0.5 0.5 0.1 0.1\n")
    dataset = client.post("/v1/datasets", json={"path": "broken", "name": "broken one"}).json()
    assert dataset["valid"] is False and dataset["profile"] is None and dataset["name"] == "broken one"
    error = dataset["validation"]["errors"][0]
    assert error == {
        "code": "class_out_of_range",
        "message": "class id 7 is not one of 0..2 (nc=3)",
        "file": "labels/train/train_0000.txt",
        "line": 1,
    }
    response = client.post("/v1/jobs", json={**pipeline, "dataset": dataset["reference"]})
    assert response.status_code == 422 and response.json()["error"]["field"] == "dataset"
    assert "labels/train/train_0000.txt:1" in response.json()["error"]["message"]
    assert client.get("/v1/jobs").json()["count"] == 0


def test_job_names_a_registered_dataset(client, client_for, tiny_dataset, pipeline):
    dataset = client.post("/v1/datasets", json={"path": tiny_dataset}).json()
    response = client.post("/v1/jobs", json={**pipeline, "dataset": dataset["reference"]})
    assert response.status_code == 202, response.text
    assert response.json()["dataset"] == dataset["reference"]
    stranger = client_for("mallory")
    refused = stranger.post("/v1/jobs", json={**pipeline, "dataset": dataset["reference"]})
    assert refused.status_code == 422 and "not found" in refused.json()["error"]["message"]
    assert stranger.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert stranger.get("/v1/datasets").json()["count"] == 0
    assert stranger.delete(f"/v1/datasets/{dataset['id']}").status_code == 404
    in_use = client.delete(f"/v1/datasets/{dataset['id']}")
    assert in_use.status_code == 409


def test_upload_zip_then_delete(client, embedded, tiny_zip, pipeline):
    response = upload(client, tiny_zip)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["valid"] and dataset["source"] == "upload" and dataset["name"] == "zipped"
    assert dataset["path"] == f"uploads/{dataset['id']}/mydata"
    assert dataset["images"] == {"train": 4, "val": 2}
    assert client.post("/v1/jobs", json={**pipeline, "dataset": dataset["reference"]}).status_code == 202
    by_folder = client.post("/v1/jobs", json={**pipeline, "dataset": dataset["path"]})
    assert by_folder.status_code == 422 and "dataset:<id>" in by_folder.json()["error"]["message"]
    job = client.get("/v1/jobs").json()["items"][0]
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert uploads_left(embedded) == [] and client.get(f"/v1/datasets/{dataset['id']}").status_code == 404


def member(name: str, mode: int | None = None) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    if mode is not None:
        info.create_system = 3
        info.external_attr = mode << 16
    return info


def zip_with(*members: tuple[zipfile.ZipInfo, bytes], base: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if base is not None:
            with zipfile.ZipFile(io.BytesIO(base)) as source:
                for info in source.infolist():
                    archive.writestr(info, source.read(info))
        for info, data in members:
            archive.writestr(info, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (member("../escape.txt"), "'..'"),
        (member("mydata/../../escape.txt"), "'..'"),
        (member("/etc/cron.d/evil"), "absolute"),
        (member("C:/evil.txt"), "absolute"),
        (member("mydata\\..\\..\\evil.txt"), "backslash"),
        (member("mydata/link", mode=stat.S_IFLNK | 0o777), "symlink"),
        (member("mydata/fifo", mode=stat.S_IFIFO | 0o644), "special file"),
    ],
)
def test_unsafe_zips_are_refused_and_leave_nothing(client, embedded, tiny_zip, extra, message):
    response = upload(client, zip_with((extra, b"/etc/passwd"), base=tiny_zip))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "file" and message in error["message"]
    assert uploads_left(embedded) == [] and client.get("/v1/datasets").json()["count"] == 0
    assert not (embedded.datasets_root.parent / "escape.txt").exists()


def test_zip_bombs_are_refused_before_extracting(client, embedded, monkeypatch):
    bomb = zip_with((member("mydata/zeros.bin"), b"\0" * 5_000_000))
    response = upload(client, bomb)
    assert response.status_code == 422 and "zip bomb" in response.json()["error"]["message"]
    monkeypatch.setattr(embedded, "dataset_unzipped_max_bytes", 10_000)
    monkeypatch.setattr(embedded, "dataset_zip_max_ratio", 1e9)
    response = upload(client, bomb)
    assert response.status_code == 413 and "expands to 5000000 bytes" in response.json()["error"]["message"]
    monkeypatch.setattr(embedded, "dataset_zip_max_files", 3)
    many = zip_with(*[(member(f"f{i}.txt"), b"x") for i in range(5)])
    assert upload(client, many).status_code == 413
    assert uploads_left(embedded) == []


def test_not_a_zip_and_bad_requests(client, embedded, tiny_dataset):
    assert upload(client, b"PK\x03\x04 not really").status_code == 422
    no_file = client.post("/v1/datasets", data={"name": "x"}, files={"other": ("a", b"b")})
    assert no_file.status_code == 422 and no_file.json()["error"]["field"] == "file"
    text = client.post("/v1/datasets", content=b"path=tiny", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    bad_json = client.post("/v1/datasets", content=b"{oops", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 422
    extra = client.post("/v1/datasets", json={"path": tiny_dataset, "owner": "someone-else"})
    assert extra.status_code == 422 and extra.json()["error"]["field"] == "owner"
    assert uploads_left(embedded) == [] and client.get("/v1/datasets").json()["count"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "../outside",
        "/etc",
        "%2e%2e/outside",
        "%252e%252e/outside",
        "tiny/../../outside",
        "..%2Foutside",
        "..\\outside",
        "link-out",
        ".",
        "uploads",
        "tiny/data.yaml",
        "nope",
    ],
)
def test_registration_paths_cannot_escape(client, embedded, tiny_dataset, path):
    outside = embedded.home / "outside"
    make_dataset(outside, train=1, val=1, size=32)
    (embedded.datasets_root / "uploads").mkdir(exist_ok=True)
    os.symlink(outside, embedded.datasets_root / "link-out")
    response = client.post("/v1/datasets", json={"path": path})
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["field"] == "path"
    assert client.get("/v1/datasets").json()["count"] == 0


def test_upload_over_the_size_limit_is_413(client, embedded, monkeypatch, tiny_zip):
    monkeypatch.setattr(embedded, "dataset_upload_max_bytes", 2048)
    response = upload(client, tiny_zip)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert uploads_left(embedded) == []


def test_the_api_process_never_loads_torch():
    import subprocess
    import sys

    code = "import sys, api.main; print(sorted(m for m in ('torch', 'ultralytics', 'worker') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_neither_the_api_nor_the_worker_imports_the_client_side():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("api", "shared", "worker"):
        for source in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                offenders += [f"{source.relative_to(root)}: {n}" for n in names if n.split(".")[0] == "client"]
    assert offenders == []
