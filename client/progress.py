"""Following a job until it ends, with a progress bar per stage. The same code follows a job over
HTTP (``stagerun watch``) and straight from the database (``stagerun run``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm

TERMINAL = {"succeeded", "failed", "cancelled", "gated"}
SHOWN_METRICS = ("train/box_loss", "train/cls_loss", "metrics/mAP50(B)", "metrics/mAP50-95(B)")


def _postfix(stage: dict) -> dict:
    metrics = stage.get("latest_metrics") or {}
    shown = {k.split("/")[-1].replace("(B)", ""): round(v, 4) for k, v in metrics.items() if k in SHOWN_METRICS}
    if stage.get("eta_s") is not None:
        shown["eta_s"] = round(stage["eta_s"])
    return shown


def follow(fetch: Callable[[], dict], interval_s: float = 1.0, out=None) -> dict:
    """Poll ``fetch()`` (a job as the API shows it) until the job ends; returns the last snapshot.

    On a terminal this draws a bar per stage; elsewhere (logs, CI) it prints a line per change."""
    out = out or sys.stderr
    if not out.isatty():
        return _follow_lines(fetch, interval_s, out)
    bar: tqdm | None = None
    bar_stage: int | None = None
    while True:
        job = fetch()
        running = next((s for s in job["stages"] if s["state"] in ("queued", "running")), None)
        if running is not None:
            if bar_stage != running["index"]:
                if bar is not None:
                    bar.close()
                total = running.get("epochs") or 1
                label = f"stage {running['index'] + 1}/{len(job['stages'])} {running['type']}"
                bar = tqdm(total=total, desc=label, unit="epoch", file=out, dynamic_ncols=True)
                bar_stage = running["index"]
            bar.n = min(running.get("epoch") or 0, bar.total)
            bar.set_postfix(_postfix(running), refresh=False)
            bar.refresh()
        if job["state"] in TERMINAL:
            if bar is not None:
                bar.close()
            return job
        time.sleep(interval_s)


def _follow_lines(fetch: Callable[[], dict], interval_s: float, out) -> dict:
    last_line = None
    while True:
        job = fetch()
        running = next((s for s in job["stages"] if s["state"] in ("queued", "running")), None)
        line = f"[{job['state']}] {job['progress']}"
        if running is not None and _postfix(running):
            line += "  " + " ".join(f"{k}={v}" for k, v in _postfix(running).items() if k != "eta_s")
        if line != last_line:
            print(line, file=out, flush=True)
            last_line = line
        if job["state"] in TERMINAL:
            return job
        time.sleep(interval_s)


def per_class_table(metrics: dict) -> str:
    """A plain-text table of overall and per-class figures from a stage's ``metrics`` result."""
    lines = [f"{'class':<16}{'images':>8}{'inst':>7}{'P':>8}{'R':>8}{'mAP50':>8}{'mAP50-95':>10}"]

    def fmt(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    overall = metrics.get("overall", {})
    lines.append(
        f"{'all':<16}{'':>8}{'':>7}{fmt(overall.get('precision')):>8}{fmt(overall.get('recall')):>8}"
        f"{fmt(overall.get('mAP50')):>8}{fmt(overall.get('mAP50-95')):>10}"
    )
    for row in metrics.get("per_class", []):
        lines.append(
            f"{row['name'][:15]:<16}{row['images']:>8}{row['instances']:>7}{fmt(row['precision']):>8}"
            f"{fmt(row['recall']):>8}{fmt(row['mAP50']):>8}{fmt(row['mAP50-95']):>10}"
        )
    return "\n".join(lines)


def starvation_table(report: dict) -> str:
    """A plain-text table of a train stage's starvation report (``info["starvation"]``): per class, the share of
    ground-truth boxes with no positive anchor and with a ~0 class target, at the first and the last epoch."""
    phases = [phase for phase in ("first_epoch", "last_epoch") if phase in report]
    if len(phases) == 2 and report["first_epoch"]["epoch"] == report["last_epoch"]["epoch"]:
        phases = ["first_epoch"]  # a one-epoch run: the same measurement twice
    header = f"{'class':<16}{'boxes':>7}"
    for phase in phases:
        header += f"{'epoch ' + str(report[phase]['epoch']) + ' unanchored':>22}{'starved':>9}"
    lines = [header]
    classes = dict.fromkeys(name for phase in phases for name in report[phase]["classes"])
    for name in classes:
        cells = [report[phase]["classes"].get(name) for phase in phases]
        boxes = max((cell["boxes"] for cell in cells if cell), default=0)
        line = f"{name[:15]:<16}{boxes:>7}"
        for cell in cells:
            line += f"{'-':>22}{'-':>9}" if cell is None else f"{cell['unanchored']:>22.1%}{cell['starved']:>9.1%}"
        lines.append(line)
    return "\n".join(lines)


def localization_table(report: dict) -> str:
    """A plain-text table of an evaluate or mine stage's localization report (``results["localization"]``): per
    class, the share of ground truth found at IoU > 0, >= 0.5 and >= 0.75 and the median width and centre
    errors, so a class's lost AP reads as detection (not found) or localization (found, but off)."""
    lines = [f"{'class':<16}{'inst':>7}{'width px':>10}{'found':>8}{'IoU.5':>8}{'IoU.75':>8}{'dW px':>8}{'ctr px':>8}"]

    def share(value) -> str:
        return f"{'-':>8}" if value is None else f"{value:>8.0%}"

    def pixels(value, signed: bool = False, width: int = 8) -> str:
        if value is None:
            return f"{'-':>{width}}"
        return f"{value:>+{width}.2f}" if signed else f"{value:>{width}.2f}"

    for row in report.get("per_class", []):
        if not row.get("instances"):
            continue
        lines.append(
            f"{row['name'][:15]:<16}{row['instances']:>7}{pixels(row['median_gt_width_px'], width=10)}"
            f"{share(row['found'])}{share(row['iou_0.5'])}{share(row['iou_0.75'])}"
            f"{pixels(row['median_width_error_px'], signed=True)}{pixels(row['median_centre_error_px'])}"
        )
    return "\n".join(lines)
