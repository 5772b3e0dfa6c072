// The flashsale dashboard: follows /api/events, starts and stops runs, shows results and the
// history. No framework, nothing fetched from elsewhere.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const csrf = meta("csrf-token");
  const tokenRequired = meta("token-required") === "yes";
  const fixedTarget = meta("fixed-target");
  const SVG = "http://www.w3.org/2000/svg";

  if (tokenRequired) {
    $("token-field").hidden = false;
  }
  if (meta("distributed") === "yes") {
    $("target").placeholder = "empty: the coordinator's target";
    $("target-help").textContent = "host:port of the checkout as the workers reach it";
  }
  if (fixedTarget) {
    $("target").value = fixedTarget;
    $("target").readOnly = true;
    $("target-help").textContent = "fixed by the dashboard's --target";
  }

  let shownResult = 0;
  let lastHistory = "";
  let busy = false;

  function text(el, value) {
    el.textContent = value;
  }

  function fmt(n, digits) {
    if (n === null || n === undefined) return "-";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits || 0 });
  }

  function formData() {
    const names = ["mode", "users", "stock", "strategy", "quantity", "duration", "target"];
    const body = {};
    for (const name of names) body[name] = $(name).value;
    return body;
  }

  async function post(path, body) {
    const headers = { "content-type": "application/json", "x-csrf-token": csrf };
    const token = $("token").value;
    if (token) headers.authorization = "Bearer " + token;
    const response = await fetch(path, {
      method: "POST",
      headers,
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    let payload = {};
    try {
      payload = await response.json();
    } catch (_) {
      payload = { error: response.statusText };
    }
    return { ok: response.ok, status: response.status, payload };
  }

  async function start(path) {
    text($("form-error"), "");
    const { ok, status, payload } = await post(path, formData());
    if (!ok) {
      const why = payload.error || `HTTP ${status}`;
      text($("form-error"), status === 401 ? "Cluster token required or wrong: " + why : why);
    }
  }

  $("run-form").addEventListener("submit", (e) => {
    e.preventDefault();
    start("/api/runs");
  });
  $("compare-btn").addEventListener("click", () => start("/api/compare"));
  $("stop-btn").addEventListener("click", async () => {
    const { ok, payload } = await post("/api/stop");
    if (!ok) text($("form-error"), payload.error || "could not stop");
  });

  // ---- charts ----
  function el(name, attrs, content) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (content !== undefined) node.textContent = content;
    return node;
  }

  // Draws points [[t, y], ...] in `svg`; a dashed zero line when `zero` and 0 is in range.
  function chart(svg, points, zero, unit) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("data-points", String(points.length));
    const W = 600, H = 220, L = 56, R = 10, T = 10, B = 28;
    svg.appendChild(el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.appendChild(el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    if (points.length === 0) {
      svg.appendChild(el("text", { x: L + 10, y: H / 2 }, "no points yet"));
      return;
    }
    const ts = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const t1 = Math.max(...ts, 0.001);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (zero) { y0 = Math.min(y0, 0); y1 = Math.max(y1, 0); }
    if (y1 === y0) { y1 = y0 + 1; }
    const x = (t) => L + (t / t1) * (W - L - R);
    const y = (v) => H - B - ((v - y0) / (y1 - y0)) * (H - T - B);
    svg.appendChild(el("text", { x: 4, y: T + 10 }, fmt(y1, 1)));
    svg.appendChild(el("text", { x: 4, y: H - B }, fmt(y0, 1)));
    svg.appendChild(el("text", { x: W - R - 70, y: H - 8 }, fmt(t1, 2) + " s"));
    svg.appendChild(el("text", { x: L, y: H - 8 }, "0 s"));
    if (zero && y0 < 0) {
      svg.appendChild(el("line", { class: "zero", x1: L, y1: y(0), x2: W - R, y2: y(0) }));
      svg.appendChild(el("text", { x: L + 4, y: y(0) - 4 }, "0: below is oversold"));
    }
    const d = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svg.appendChild(el("polyline", { class: "line", points: d }));
    if (points.length <= 60) {
      for (const p of points) {
        const dot = el("circle", { class: "dot", cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5 });
        dot.appendChild(el("title", {}, `${fmt(p[0], 3)} s: ${fmt(p[1], 1)} ${unit}`));
        svg.appendChild(dot);
      }
    }
  }

  // ---- live ----
  function renderLive(live) {
    if (!live) return;
    text($("f-elapsed"), fmt(live.elapsed_s, 1) + " s");
    text($("f-rate"), fmt(live.requests_per_s));
    text($("f-attempts"), fmt(live.attempts));
    text($("f-purchased"), fmt(live.purchased));
    text($("f-soldout"), fmt(live.sold_out));
    text($("f-errors"), fmt(live.errors));
    text($("f-stock"), live.stock === null ? "-" : fmt(live.stock));
    const ms = (us) => fmt(us / 1000, us < 10000 ? 2 : 1) + " ms";
    text($("f-p50"), live.latency ? ms(live.latency.p50_us) : "-");
    text($("f-p99"), live.latency ? ms(live.latency.p99_us) : "-");
    workersTable(live.workers || []);
    chart($("stock-chart"), live.stock_points, true, "units");
    chart($("rate-chart"), live.rate_points, false, "req/s");
    const statuses = Object.entries(live.by_status || {});
    if (live.timeouts) statuses.push(["client timeout", live.timeouts]);
    errorsTable(statuses);
  }

  function workersTable(workers) {
    $("workers-block").hidden = workers.length === 0;
    const body = $("workers").tBodies[0];
    body.replaceChildren();
    for (const w of workers) {
      const tr = body.insertRow();
      tr.className = "worker " + w.state;
      text(tr.insertCell(), w.name);
      text(tr.insertCell(), w.state);
      for (const n of [w.attempts, w.purchased, w.sold_out, w.errors]) {
        const td = tr.insertCell();
        td.className = "num";
        td.textContent = fmt(n);
      }
    }
  }

  function errorsTable(statuses) {
    const body = $("errors").tBodies[0];
    body.replaceChildren();
    if (statuses.length === 0) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.colSpan = 2;
      td.textContent = "none";
      return;
    }
    for (const [name, n] of statuses) {
      const tr = body.insertRow();
      text(tr.insertCell(), name);
      const td = tr.insertCell();
      td.className = "num";
      td.textContent = fmt(n);
    }
  }

  function describe(run) {
    const shape = run.duration_s === null ? "burst" : `sustained ${run.duration_s} s`;
    return `#${run.id} ${run.label}: ${fmt(run.users)} users, stock ${fmt(run.stock)}, ${shape}`;
  }

  function render(snapshot) {
    busy = snapshot.busy;
    $("start-btn").disabled = busy;
    $("compare-btn").disabled = busy;
    $("stop-btn").disabled = !busy;
    const run = snapshot.run;
    if (run) {
      const part = snapshot.live && run.kind === "compare" ? ` (run ${snapshot.live.part} of 4)` : "";
      const stopped = run.stopped ? `stopped by ${run.stopped.by} after ${run.stopped.after_s.toFixed(1)} s` : "stopped";
      const phase = { running: "running", stopping: "stopping: finishing in-flight requests, then the audit", done: "finished", stopped: stopped, failed: "failed" }[run.phase];
      text($("status"), `${describe(run)}: ${phase}${part}`);
    }
    renderLive(snapshot.live);
    const history = JSON.stringify(snapshot.history);
    if (history !== lastHistory) {
      lastHistory = history;
      renderHistory(snapshot.history);
    }
    if (run && (run.phase === "done" || run.phase === "stopped" || run.phase === "failed") && run.id !== shownResult) {
      shownResult = run.id;
      showResult(run.id);
    }
  }

  // ---- result ----
  function cell(tr, value, cls) {
    const td = tr.insertCell();
    td.textContent = value;
    if (cls) td.className = cls;
    return td;
  }

  function table(headers, rows) {
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const h of headers) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const c of row) {
        if (Array.isArray(c)) cell(tr, c[0], c[1]);
        else cell(tr, c);
      }
    }
    wrap.appendChild(t);
    return wrap;
  }

  function heading(level, words) {
    const h = document.createElement("h" + level);
    h.textContent = words;
    return h;
  }

  function link(href, words, download) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = words;
    if (download) a.setAttribute("download", "");
    return a;
  }

  const SYMBOL = { pass: "✔ PASS", fail: "✘ FAIL", inconclusive: "? INCONCLUSIVE", skipped: "– skipped" };

  function reportBody(report, into) {
    const checks = report.audit.checks.map((c) => [
      c.name,
      [SYMBOL[c.status] || c.status, "st-" + c.status],
      c.detail,
    ]);
    into.appendChild(heading(3, "Checks"));
    const checksTable = table(["Check", "Result", "In words"], checks);
    checksTable.querySelector("table").id = "checks";
    into.appendChild(checksTable);
    const a = report.audit;
    into.appendChild(heading(3, "Reconciliation"));
    const rec = [
      ["initial stock", a.initial_stock], ["final stock", a.final_stock],
      ["units sold (server)", a.units_sold], ["units demanded", a.units_demanded],
      ["oversold units", a.oversold_units],
      ["lowest stock seen", a.min_stock_seen === null ? "-" : a.min_stock_seen],
    ];
    const r = a.reconciliation;
    if (r.available) {
      rec.push(["orders in the book", r.book_orders], ["units in the book", r.book_units],
        ["lost", r.lost], ["phantom", r.phantom], ["ghost", r.ghost],
        ["duplicate requests", r.duplicate_requests], ["duplicate order ids", r.duplicate_order_ids],
        ["unresolved", r.unresolved]);
    } else {
      rec.push(["order book", r.reason || "not available"]);
    }
    into.appendChild(table(["Figure", "Value"], rec.map(([k, v]) => [k, [String(v), "num"]])));
    into.appendChild(heading(3, "Throughput and latency"));
    const l = report.latency_ms;
    into.appendChild(table(["Figure", "Value"], [
      ["attempts", [fmt(report.outcomes.attempts), "num"]],
      ["purchased", [fmt(report.outcomes.purchased), "num"]],
      ["errors", [fmt(report.outcomes.errors), "num"]],
      ["requests/s", [fmt(report.throughput_rps), "num"]],
      ["latency p50 / p90 / p99 (ms)", [`${fmt(l.p50, 2)} / ${fmt(l.p90, 2)} / ${fmt(l.p99, 2)}`, "num"]],
      ["elapsed (s)", [fmt(report.run.elapsed_s, 3), "num"]],
    ]));
    if (report.workers) {
      into.appendChild(heading(3, "Workers"));
      into.appendChild(table(["Worker", "Users", "Attempts", "Purchased", "Errors", "req/s", "State"],
        report.workers.map((w) => [w.name, [fmt(w.users), "num"], [fmt(w.attempts), "num"],
          [fmt(w.purchased), "num"], [fmt(w.errors), "num"], [fmt(w.throughput_rps), "num"],
          w.lost ? "lost" : w.faulty ? "faulty" : w.error ? "failed: " + w.error : "reported"])));
    }
  }

  async function showResult(id) {
    const response = await fetch(`/api/runs/${id}`);
    if (!response.ok) return;
    const { entry, result } = await response.json();
    const verdict = $("verdict");
    const body = $("result-body");
    body.replaceChildren();
    if (entry.phase === "failed" || !result) {
      verdict.className = "failed";
      verdict.replaceChildren(heading(3, `Run #${id} ended without a report`));
      verdict.appendChild(document.createTextNode(entry.error || ""));
      return;
    }
    const downloads = document.createElement("p");
    downloads.id = "downloads";
    downloads.append(link(`/api/runs/${id}/report.json`, "Download the JSON report", true), " · ",
      link(`/api/runs/${id}/report.html`, "Open the HTML report"), " · ",
      link(`/api/runs/${id}/report.html`, "Download it", true));
    if (entry.kind === "compare") {
      const verdicts = result.runs.map((r) => `${r.label}: ${r.verdict.toUpperCase()}`).join(", ");
      verdict.className = "";
      verdict.replaceChildren(heading(3, `All modes (#${id}) finished`));
      verdict.appendChild(document.createTextNode(verdicts +
        ". buggy and unstable are expected to FAIL: that is what the comparison shows."));
      body.appendChild(downloads);
      const labels = result.runs.map((r) => r.label);
      const row = (name, f) => [name, ...result.runs.map((r) => [String(f(r)), "num"])];
      body.appendChild(table(["", ...labels], [
        row("verdict", (r) => r.verdict.toUpperCase()),
        row("purchased", (r) => r.outcomes.purchased),
        row("oversold units", (r) => r.audit.oversold_units),
        row("final stock", (r) => r.audit.final_stock),
        row("errors", (r) => r.outcomes.errors),
        row("requests/s", (r) => Math.round(r.throughput_rps)),
        row("p99 (ms)", (r) => r.latency_ms.p99.toFixed(2)),
      ]));
      for (const run of result.runs) {
        body.appendChild(heading(3, `${run.label}: ${SYMBOL[run.verdict] || run.verdict}`));
        reportBody(run, body);
      }
      return;
    }
    const v = result.verdict;
    verdict.className = v;
    const strong = document.createElement("strong");
    strong.textContent = SYMBOL[v] || v;
    const failed = result.audit.checks.filter((c) => c.status === "fail").map((c) => c.name);
    verdict.replaceChildren(strong, document.createTextNode(
      ` — run #${id} ${entry.label}` + (failed.length ? `: failed ${failed.join(", ")}` : "")));
    body.appendChild(downloads);
    reportBody(result, body);
    // A burst is over between two live samples: draw the stock the run polled.
    const polled = (result.series.stock || []).map((p) => [p.t_s, p.stock]);
    if (polled.length > Number($("stock-chart").getAttribute("data-points"))) {
      chart($("stock-chart"), polled, true, "units");
    }
  }

  // ---- history ----
  function renderHistory(lines) {
    const body = $("history-table").tBodies[0];
    body.replaceChildren();
    for (const line of lines.slice().reverse()) {
      const tr = body.insertRow();
      const pick = tr.insertCell();
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = String(line.id);
      const reported = line.phase === "done" || line.phase === "stopped";
      box.disabled = !reported;
      box.setAttribute("aria-label", `compare run #${line.id}`);
      pick.appendChild(box);
      cell(tr, `#${line.id}`);
      cell(tr, line.label);
      cell(tr, line.phase);
      const verdicts = (line.verdict || "-").split(" ").map((v) => SYMBOL[v] || v).join(" ");
      cell(tr, verdicts, line.verdict && line.verdict.indexOf(" ") < 0 ? "st-" + line.verdict : "");
      const reports = tr.insertCell();
      if (reported) {
        reports.append(link(`/api/runs/${line.id}/report.html`, "HTML"), " ",
          link(`/api/runs/${line.id}/report.json`, "JSON", true));
      }
    }
  }

  $("compare-selected").addEventListener("click", () => {
    const ids = [...document.querySelectorAll("#history-table input:checked")].map((b) => b.value);
    const out = $("compare-links");
    out.replaceChildren();
    if (ids.length < 2) {
      text(out, "Select two or more finished runs.");
      return;
    }
    const q = ids.reverse().join(",");
    out.append(link(`/api/comparison.html?ids=${q}`, `Open the comparison of #${ids.join(", #")}`),
      " · ", link(`/api/comparison.json?ids=${q}`, "JSON", true));
  });

  // ---- events ----
  const events = new EventSource("/api/events");
  events.addEventListener("state", (e) => render(JSON.parse(e.data)));
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) text($("status"), "Disconnected from the driver.");
  });
})();
