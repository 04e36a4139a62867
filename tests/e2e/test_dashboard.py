"""The dashboard in a real browser: Debian's headless Chromium driven by selenium through Debian's chromedriver
(nothing downloads a browser; .ci/run installs both). Real API and worker processes, real tiny jobs.

- a finished job's page: the curves end at the stored metric rows, the per-class table and the localization
  table hold the evaluate stage's numbers, the plots load;
- a running job's page: the curves grow from the event stream without a reload; Cancel stops the job;
- a job with 300 epochs of metrics: the page's load time is recorded (test-artifacts/dashboard-timing.json).

Screenshots go to test-artifacts/screenshots/ (``STAGERUN_TEST_ARTIFACTS`` moves the folder)."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.checks import tiny_pipeline

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("STAGERUN_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


@pytest.fixture(scope="module")
def stack(stack_factory):
    return stack_factory("dashboard")


@pytest.fixture(scope="module")
def driver(stack):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt install chromium chromium-driver; .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,2000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.implicitly_wait(0)
    sign_in(browser, stack)
    yield browser
    browser.quit()


def sign_in(browser, stack) -> None:
    from selenium.webdriver.common.by import By

    browser.get(stack.url + "/")
    assert "/ui/login" in browser.current_url  # no session yet: the login form
    browser.find_element(By.ID, "token").send_keys(stack.token)
    browser.find_element(By.ID, "sign-in").click()
    wait(browser, lambda b: b.current_url.rstrip("/") == stack.url)
    cookie = browser.get_cookie("stagerun_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie").find("stagerun_session") == -1  # scripts cannot read it


def wait(browser, condition, timeout_s: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout_s, poll_frequency=0.2).until(condition)


def screenshot(browser, name: str) -> None:
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(folder / f"{name}.png"))


def polylines(browser) -> dict[tuple[str, str], dict]:
    """Every drawn series: (stage index, series name) -> its point count and last point (read in one script, so a
    redraw from the event stream cannot interleave)."""
    lines = browser.execute_script(
        "return [...document.querySelectorAll('#curves .chart polyline')].map(l => ["
        "l.closest('.chart').dataset.stage, l.dataset.series, l.dataset.points, l.dataset.lastEpoch, l.dataset.last])"
    )
    return {
        (stage, series): {"points": int(points), "epoch": int(epoch), "value": float(value)}
        for stage, series, points, epoch, value in lines
    }


def state_text(browser) -> str:
    return browser.execute_script("const s = document.getElementById('job-state'); return s ? s.textContent : ''")


def cell_texts(row) -> list[str]:
    from selenium.webdriver.common.by import By

    return [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def test_a_finished_job_page_shows_its_numbers(stack, driver):
    from selenium.webdriver.common.by import By

    pipeline = tiny_pipeline(epochs=3)
    pipeline["name"] = "finished-in-browser"
    pipeline["stages"].insert(1, {"type": "mine", "split": "val", "imgsz": 64})
    job = stack.run_to_success(pipeline)
    with stack.client() as client:
        rows = client.get(f"/v1/jobs/{job['id']}/metrics").json()["rows"]

    driver.get(f"{stack.url}/ui/jobs/{job['id']}")
    assert driver.find_element(By.ID, "job-state").text == "succeeded"
    drawn = polylines(driver)
    last = rows[-1]
    for key in ("metrics/mAP50(B)", "train/box_loss", "train/cls_loss"):
        series = drawn[("0", key)]
        assert series["points"] == len(rows) == 3 and series["epoch"] == last["epoch"]
        assert series["value"] == pytest.approx(last["values"][key], rel=1e-9, abs=1e-12)

    evaluation = job["stages"][2]["results"]
    table = driver.find_element(By.CSS_SELECTOR, 'table.per-class[data-stage="2"]')
    overall = evaluation["metrics"]["overall"]
    assert cell_texts(table.find_element(By.CSS_SELECTOR, "tr.overall"))[3:] == [
        fmt(overall[k]) for k in ("precision", "recall", "mAP50", "mAP50-95")
    ]
    for expected in evaluation["metrics"]["per_class"]:
        row = table.find_element(By.CSS_SELECTOR, f'tr[data-class="{expected["name"]}"]')
        assert cell_texts(row) == [
            expected["name"],
            str(expected["images"]),
            str(expected["instances"]),
            *[fmt(expected[k]) for k in ("precision", "recall", "mAP50", "mAP50-95")],
        ]
    localization = driver.find_element(By.CSS_SELECTOR, 'table.localization[data-stage="2"]')
    for expected in evaluation["localization"]["per_class"]:
        if expected["instances"]:
            row = localization.find_element(By.CSS_SELECTOR, f'tr[data-class="{expected["name"]}"]')
            assert cell_texts(row)[:2] == [expected["name"], str(expected["instances"])]
            assert cell_texts(row)[3] == f"{100 * expected['found']:.0f}%"
    errors = driver.find_element(By.CSS_SELECTOR, 'table.errors[data-stage="2"]')
    missed = errors.find_element(By.CSS_SELECTOR, 'tr[data-kind="missed"]')
    assert cell_texts(missed)[1] == str(evaluation["error_breakdown"]["overall"]["missed"]["count"])

    images = driver.find_elements(By.CSS_SELECTOR, "#stage-2 .plots img")
    assert {img.get_attribute("alt") for img in images} >= {"Confusion matrix (normalized)", "Precision-recall curve"}
    previews = driver.find_elements(By.CSS_SELECTOR, "#stage-1 .previews img")
    assert previews, "the mine stage shows its hard-example previews"
    for img in [*images, *previews]:
        driver.execute_script("arguments[0].scrollIntoView()", img)
        wait(driver, lambda _, img=img: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img))
    download = driver.find_element(By.ID, "download-weights").get_attribute("href")
    assert download.endswith(f"/v1/jobs/{job['id']}/weights")
    screenshot(driver, "finished-job")

    driver.get(f"{stack.url}/ui/compare?a={job['id']}&b={job['id']}:2")
    assert driver.find_element(By.ID, "compare-classes").find_elements(By.CSS_SELECTOR, "tbody tr")
    screenshot(driver, "compare")
    driver.get(stack.url + "/?name=finished-in-browser")
    listed = driver.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job["id"]}"]')
    assert listed.find_element(By.CSS_SELECTOR, ".state").text == "succeeded"
    assert "3/3 stages done" in listed.text
    screenshot(driver, "jobs-list")


def test_a_running_job_page_updates_live_and_cancels(stack, driver):
    from selenium.webdriver.common.by import By

    pipeline = {**tiny_pipeline(epochs=300), "name": "running-in-browser"}
    with stack.client() as client:
        submitted = client.post("/v1/jobs", json=pipeline)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    stack.wait_for(job_id, lambda job: job["stages"][0]["epoch"] >= 2, timeout_s=300)

    driver.get(f"{stack.url}/ui/jobs/{job_id}")
    assert driver.find_element(By.ID, "job-state").text == "running"
    first = polylines(driver)[("0", "train/box_loss")]["points"]
    assert first >= 2
    # new epochs arrive through the event stream and are drawn without a reload
    marker = driver.execute_script("window.__same_page = true; return window.__same_page")
    assert marker
    wait(driver, lambda _: polylines(driver)[("0", "train/box_loss")]["points"] >= first + 2, timeout_s=120)
    assert driver.execute_script("return window.__same_page === true")
    epochs_text = driver.find_element(By.CSS_SELECTOR, '#stages tr[data-stage="0"] [data-field="epochs"]').text
    assert epochs_text.startswith("epoch ") and epochs_text.endswith("/300")
    screenshot(driver, "running-job")

    driver.find_element(By.ID, "cancel").click()
    wait(driver, lambda _: state_text(driver) == "cancelled", timeout_s=120)
    with stack.client() as client:
        final = client.get(f"/v1/jobs/{job_id}").json()
    assert final["state"] == "cancelled" and final["stages"][0]["epoch"] < 300
    assert not driver.find_element(By.ID, "cancel").is_displayed()
    assert driver.find_element(By.ID, "resume").is_displayed()
    screenshot(driver, "cancelled-job")
    # the stream's end event reloads the page as a finished one; wait for it, or it can land on the next
    # test's navigation and replace that page with this one
    wait(
        driver,
        lambda _: driver.execute_script(
            "return window.__same_page === undefined && document.getElementById('job').dataset.terminal === 'true'"
        ),
        timeout_s=60,
    )


def write_long_job(stack, epochs: int) -> str:
    """A finished job with ``epochs`` metric rows, written straight into the stack's database (its SQLite file)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from shared.models import Job, MetricRow, Stage, utcnow

    engine = create_engine(f"sqlite:///{stack.home / 'stagerun.db'}")
    started = utcnow() - timedelta(hours=5)
    with Session(engine) as session:
        job = Job(
            name="three-hundred-epochs", tags=["long"], state="succeeded", dataset="tiny", model="yolov8n.yaml",
            spec={}, created_at=started, started_at=started, finished_at=utcnow(), owner="local",
        )
        session.add(job)
        session.flush()
        stage = Stage(
            job_id=job.id, index=0, type="train", state="succeeded", spec={"type": "train", "epochs": epochs},
            dir=f"jobs/{job.id}/01-train", epoch=epochs, epochs=epochs, started_at=started, finished_at=utcnow(),
        )
        session.add(stage)
        session.flush()
        for epoch in range(1, epochs + 1):
            values = {
                "epoch": epoch, "train/box_loss": 3.0 / epoch, "train/cls_loss": 5.0 / epoch, "train/dfl_loss": 1.0,
                "metrics/mAP50(B)": epoch / epochs, "metrics/mAP50-95(B)": epoch / (2 * epochs),
                "metrics/precision(B)": 0.5, "metrics/recall(B)": 0.5, "val/box_loss": 2.0, "val/cls_loss": 2.0,
                "lr/pg0": 0.01,
            }
            session.add(MetricRow(stage_id=stage.id, epoch=epoch, values=values))
        session.commit()
        return job.id


def test_a_job_with_300_epochs_loads_in_under_a_second(stack, driver):
    job_id = write_long_job(stack, 300)
    timings = []
    for _ in range(3):
        driver.get(f"{stack.url}/ui/jobs/{job_id}")
        drawn = polylines(driver)
        assert drawn[("0", "metrics/mAP50(B)")]["points"] == 300
        assert drawn[("0", "metrics/mAP50(B)")]["value"] == pytest.approx(1.0)
        navigation = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {load: n.loadEventEnd - n.startTime, response: n.responseEnd - n.startTime,"
            " draw: Number(document.getElementById('job').dataset.drawMs)};"
        )
        timings.append(navigation)
    screenshot(driver, "job-300-epochs")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    record = {"epochs": 300, "loads_ms": timings, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (ARTIFACTS / "dashboard-timing.json").write_text(json.dumps(record, indent=2))
    print(f"job page with 300 epochs: {[round(t['load']) for t in timings]} ms to the load event")
    assert min(t["load"] for t in timings) < 1000, timings
