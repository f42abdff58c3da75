// mlac-audit web view: live progress of a job page over /ui/jobs/{id}/events (Server-Sent Events).
// Text goes into the page with textContent only (never innerHTML): model names and errors cannot inject markup.
"use strict";

(function () {
  const job = document.getElementById("job");
  if (!job || job.dataset.live !== "1") return;
  const id = job.dataset.job;
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f5bd3", "#c0362c", "#1a7f4b", "#b26a00", "#7a3fc2", "#0f8a8a"];
  let events = 0;

  const set = (elId, text) => { const el = document.getElementById(elId); if (el) el.textContent = text; };
  const pct = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%");
  const dur = (s) => {
    if (s === null || s === undefined) return "—";
    s = Math.round(s);
    if (s >= 3600) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    return s >= 60 ? Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s" : s + "s";
  };
  const badge = (holder, text, kind) => {
    const el = document.getElementById(holder);
    if (!el) return;
    el.textContent = "";
    if (!text) return;
    const span = document.createElement("span");
    span.className = "badge " + kind + "-" + text.toLowerCase();
    span.textContent = text;
    el.appendChild(span);
  };
  const svg = (name, attrs, parent) => {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  };

  function drawCurves(points) {
    const box = document.getElementById("live-curves");
    if (!box || !points.length) return;
    const old = box.querySelector("svg");
    if (old) old.remove();
    const W = 760, H = 300, L = 48, R = 190, T = 14, B = 36;
    const ns = [...new Set(points.map((p) => p.n))].sort((a, b) => a - b);
    const lx = (n) => Math.log(n);
    const [x0, x1] = [lx(ns[0]), lx(ns[ns.length - 1])];
    const X = (n) => (x1 === x0 ? L + (W - L - R) / 2 : L + ((lx(n) - x0) / (x1 - x0)) * (W - L - R));
    const Y = (v) => T + (1 - v) * (H - T - B);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "live attack curves" });
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      svg("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: v === 0 ? "axis" : "grid" }, root);
      svg("text", { x: L - 8, y: Y(v) + 4, "text-anchor": "end" }, root).textContent = (100 * v).toFixed(0) + "%";
    }
    for (const n of ns) svg("text", { x: X(n), y: H - B + 16, "text-anchor": "middle" }, root).textContent = "n=" + n;
    const series = new Map();
    for (const p of points) {
      const key = p.model + "\u0000" + p.task;
      if (!series.has(key)) series.set(key, { model: p.model, task: p.task, byN: new Map() });
      const s = series.get(key);
      if (!s.byN.has(p.n)) s.byN.set(p.n, []);
      s.byN.get(p.n).push(p.value);
    }
    const models = [...new Set(points.map((p) => p.model))];
    let row = 0;
    for (const s of series.values()) {
      const color = COLORS[models.indexOf(s.model) % COLORS.length];
      const pts = [...s.byN.entries()].sort((a, b) => a[0] - b[0])
        .map(([n, vs]) => [X(n), Y(vs.reduce((a, b) => a + b, 0) / vs.length)]);
      const dash = s.task === "beneficial" ? "5 4" : "none";
      svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: color,
                        "stroke-width": 2, "stroke-dasharray": dash }, root);
      for (const [x, y] of pts) svg("circle", { cx: x, cy: y, r: 3.5, fill: color }, root);
      const ly = T + 10 + 18 * row++;
      svg("line", { x1: W - R + 14, x2: W - R + 36, y1: ly - 4, y2: ly - 4, stroke: color, "stroke-width": 2,
                    "stroke-dasharray": dash }, root);
      const label = (s.model.length > 14 ? s.model.slice(0, 12) + "…" : s.model) + " · " + s.task;
      svg("text", { x: W - R + 42, y: ly }, root).textContent = label;
    }
    box.appendChild(root);
  }

  function onProgress(view) {
    events += 1;
    job.dataset.events = String(events);
    set("stage", view.stage || "—");
    set("trials", view.trials_total ? `${view.trials_done || 0} / ${view.trials_total}` : "—");
    set("studies", view.studies_total ? `${view.studies_done || 0} / ${view.studies_total}` : "—");
    set("harmful-best", pct(view.harmful_best));
    set("eta", dur(view.eta_s));
    const bar = document.getElementById("bar");
    if (bar && view.trials_total) { bar.max = view.trials_total; bar.value = view.trials_done || 0; }
    drawCurves(view.points || []);
  }

  function onEnd(end) {
    job.dataset.live = "0";
    job.dataset.ended = end.state;
    badge("state", end.state, "state");
    badge("verdict", end.verdict, "verdict");
    set("eta", "—");
    if (end.finished) set("finished", end.finished);
    const cancel = job.querySelector("form[action$='/cancel']");
    if (cancel) cancel.remove();
    const actions = job.querySelector(".actions");
    if (end.state === "SUCCEEDED") {
      const bar = document.getElementById("bar");
      if (bar) { bar.max = 1; bar.value = 1; }
      if (actions && !document.getElementById("report-link")) {
        const a = document.createElement("a");
        a.className = "button"; a.id = "report-link"; a.href = `/ui/jobs/${id}/report`;
        a.textContent = "Open the audit report";
        actions.prepend(a);
      }
      const box = document.getElementById("live-curves");
      if (box && !document.getElementById("curves")) {
        const fig = document.createElement("figure");
        const img = document.createElement("img");
        img.id = "curves"; img.alt = "attack curves"; img.src = `/ui/jobs/${id}/figures/curves.png?t=${Date.now()}`;
        fig.appendChild(img);
        box.after(fig);
        box.hidden = true;  // the audit's own figure replaces the live sketch
      }
    }
    if (end.error) {
      const div = document.createElement("div");
      div.className = "error-box";
      const strong = document.createElement("strong");
      strong.textContent = "Error: ";
      const code = document.createElement("code");
      code.id = "job-error"; code.textContent = end.error;
      div.append(strong, code);
      job.appendChild(div);
    }
  }

  const source = new EventSource(`/ui/jobs/${id}/events`);
  source.addEventListener("progress", (msg) => onProgress(JSON.parse(msg.data)));
  source.addEventListener("end", (msg) => { source.close(); onEnd(JSON.parse(msg.data)); });
})();
