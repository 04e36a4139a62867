// A job's page: curves drawn as SVG from the metric rows (embedded in the page, then re-read from
// /v1/jobs/{id}/metrics whenever the event stream says the job changed), live stage progress, and the buttons.
(() => {
  const root = document.getElementById("job");
  const GROUPS = {
    loss: ["train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss", "val/cls_loss"],
    mAP: ["metrics/mAP50(B)", "metrics/mAP50-95(B)", "metrics/precision(B)", "metrics/recall(B)"],
  };
  const COLOURS = ["#2458b3", "#d2691e", "#2e8b57", "#8b3a9b", "#b22222"];
  const SVG = "http://www.w3.org/2000/svg";
  const W = 420, H = 200, PAD = { l: 44, r: 10, t: 8, b: 24 };

  function series(rows) {
    const stages = new Map();
    for (const row of rows) {
      if (!stages.has(row.stage_index)) stages.set(row.stage_index, { type: row.stage_type, groups: {} });
      const stage = stages.get(row.stage_index);
      for (const [group, keys] of Object.entries(GROUPS)) {
        for (const key of keys) {
          const value = row.values[key];
          if (typeof value !== "number" || !isFinite(value)) continue;
          ((stage.groups[group] ??= {})[key] ??= []).push([row.epoch, value]);
        }
      }
    }
    return stages;
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function chart(title, lines, stageIndex, group) {
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.stage = stageIndex;
    box.dataset.group = group;
    box.innerHTML = `<h3>${title}</h3>`;
    const all = Object.values(lines).flat();
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
    let y0 = Math.min(...ys, 0), y1 = Math.max(...ys);
    if (y1 <= y0) y1 = y0 + 1;
    const sx = (x) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
    const sy = (y) => H - PAD.b - ((y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
    const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
    el("line", { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, stroke: "#999" }, svg);
    el("line", { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, stroke: "#999" }, svg);
    for (const [y, anchor] of [[y0, "end"], [y1, "end"]]) {
      el("text", { x: PAD.l - 4, y: sy(y) + 3, "text-anchor": anchor }, svg).textContent = y.toPrecision(3);
    }
    el("text", { x: PAD.l, y: H - 8 }, svg).textContent = `epoch ${x0}`;
    el("text", { x: W - PAD.r, y: H - 8, "text-anchor": "end" }, svg).textContent = `${x1}`;
    const legend = document.createElement("div");
    legend.className = "legend";
    Object.entries(lines).forEach(([key, points], i) => {
      const colour = COLOURS[i % COLOURS.length];
      const last = points[points.length - 1];
      el("polyline", {
        points: points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "),
        fill: "none", stroke: colour, "stroke-width": 1.6,
        "data-series": key, "data-points": points.length, "data-last-epoch": last[0], "data-last": last[1],
      }, svg);
      legend.insertAdjacentHTML("beforeend", `<span><i style="background:${colour}"></i>${key} ${last[1].toFixed(4)}</span>`);
    });
    box.appendChild(svg);
    box.appendChild(legend);
    return box;
  }

  function draw(rows) {
    const target = document.getElementById("curves");
    if (!target) return;
    const fragment = document.createDocumentFragment();
    for (const [index, stage] of series(rows)) {
      for (const [group, lines] of Object.entries(stage.groups)) {
        fragment.appendChild(chart(`stage ${index} ${stage.type}: ${group}`, lines, index, group));
      }
    }
    target.replaceChildren(fragment);
    root.dataset.metricRows = rows.length;
  }

  function showJob(job) {
    const state = document.getElementById("job-state");
    state.textContent = job.state;
    state.className = `state state-${job.state}`;
    document.getElementById("job-progress").textContent = job.progress;
    for (const stage of job.stages) {
      const row = document.querySelector(`#stages tr[data-stage="${stage.index}"]`);
      if (!row) continue;
      const badge = row.querySelector('[data-field="state"]');
      badge.textContent = stage.state;
      badge.className = `state state-${stage.state}`;
      const percent = stage.state === "succeeded" ? 100 : stage.epochs ? Math.round((100 * stage.epoch) / stage.epochs) : 0;
      row.querySelector('[data-field="bar"]').style.width = `${percent}%`;
      if (stage.epochs) row.querySelector('[data-field="epochs"]').textContent = `epoch ${stage.epoch}/${stage.epochs}`;
    }
    document.getElementById("cancel").hidden = ["succeeded", "failed", "cancelled", "gated"].includes(job.state) || job.cancel_requested;
    document.getElementById("resume").hidden = !["failed", "cancelled"].includes(job.state);
  }

  async function refresh() {
    const [job, metrics] = await Promise.all(
      [root.dataset.self, root.dataset.metrics].map((url) => fetch(url, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null))),
    );
    if (job) showJob(job);
    if (metrics) draw(metrics.rows);
  }

  function follow() {
    // the stream's own ids let the browser resume after a dropped connection (Last-Event-ID) without gaps
    const source = new EventSource(root.dataset.events, { withCredentials: true });
    let pending = null;
    const later = () => {
      clearTimeout(pending);
      pending = setTimeout(refresh, 150);
    };
    source.addEventListener("job", (event) => showJob(JSON.parse(event.data)));
    for (const kind of ["state", "stage", "epoch"]) source.addEventListener(kind, later);
    source.addEventListener("end", () => {
      source.close();
      window.location.reload(); // the finished page renders the final tables and plots
    });
  }

  function button(id, done) {
    const node = document.getElementById(id);
    node.addEventListener("click", async () => {
      const message = document.getElementById("action-message");
      node.disabled = true;
      try {
        const job = await window.stagerun.post(node.dataset.url);
        message.textContent = done;
        showJob(job);
        if (id === "resume") window.location.reload();
      } catch (error) {
        message.textContent = error.message;
        node.disabled = false;
      }
    });
  }

  const started = performance.now();
  draw(JSON.parse(document.getElementById("metrics-data").textContent));
  root.dataset.drawMs = (performance.now() - started).toFixed(1);
  button("cancel", "Cancel requested: the running stage stops at its next batch.");
  button("resume", "Resumed.");
  if (root.dataset.terminal !== "true") follow();
})();
