"""The web page at /: pick a served model, fill a form generated from its input schema, see the prediction.

One self-contained HTML document (inline CSS and vanilla JavaScript, no external URLs) that talks to the same JSON API
as any client: GET /v1/models for the models and their input schemas, POST /v1/models/{name}/versions/{version}/predict
for a prediction. When the server wants an API key the page shows a key field; the key is sent as X-API-Key and kept in
sessionStorage for the tab.
"""
from __future__ import annotations

_CSS = """
:root {
  --bg: #f5f6f8; --card: #ffffff; --text: #18202f; --muted: #667085; --border: #e3e6eb; --field: #ffffff;
  --accent: #4f46e5; --accent-hover: #4338ca; --accent-soft: #eef0ff; --bar: #c9cdfb; --track: #f0f1f5;
  --danger: #b42318; --danger-soft: #fff1f0; --danger-border: #f8c9c4; --ok: #12a150;
  --shadow: 0 1px 2px rgba(16, 24, 40, .05), 0 4px 16px rgba(16, 24, 40, .06);
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f131a; --card: #171c25; --text: #e6e9ef; --muted: #98a2b3; --border: #2a313d; --field: #11151c;
    --accent: #818cf8; --accent-hover: #a5b4fc; --accent-soft: #23264a; --bar: #3b3f7a; --track: #222836;
    --danger: #ff8a80; --danger-soft: #2a1718; --danger-border: #5c2b2b; --shadow: none;
  }
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body { background: var(--bg); color: var(--text); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
       "Helvetica Neue", Arial, sans-serif; -webkit-font-smoothing: antialiased; }
[hidden] { display: none !important; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { display: flex; align-items: center; justify-content: space-between; gap: 16px; padding: 14px 28px;
             background: var(--card); border-bottom: 1px solid var(--border); }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 650; font-size: 17px; letter-spacing: -.01em; }
.logo { width: 28px; height: 28px; border-radius: 8px; background: linear-gradient(135deg, #6366f1, #8b5cf6);
        display: grid; place-items: center; color: #fff; font-size: 15px; font-weight: 700; }
.brand .sub { color: var(--muted); font-weight: 450; }
header nav { display: flex; align-items: center; gap: 18px; font-size: 14px; }
.pill { display: inline-flex; align-items: center; gap: 6px; padding: 2px 10px; border-radius: 999px;
        border: 1px solid var(--border); color: var(--muted); font-size: 13px; }
.dot { width: 8px; height: 8px; border-radius: 50%; background: var(--muted); }
.pill.ready .dot { background: var(--ok); }
.pill.down .dot { background: var(--danger); }
main { max-width: 1120px; margin: 28px auto; padding: 0 24px; display: grid; gap: 24px;
       grid-template-columns: minmax(0, 5fr) minmax(0, 6fr); align-items: start; }
@media (max-width: 860px) { main { grid-template-columns: 1fr; } header.top { padding: 12px 16px; } }
.card { background: var(--card); border: 1px solid var(--border); border-radius: 14px; box-shadow: var(--shadow);
        padding: 22px 24px; }
.card h2 { margin: 0 0 16px; font-size: 13px; font-weight: 650; text-transform: uppercase; letter-spacing: .06em;
           color: var(--muted); }
#fields { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); column-gap: 14px; }
#fields .field.wide { grid-column: 1 / -1; }
.field { display: flex; flex-direction: column; gap: 6px; margin-bottom: 16px; }
.field > label:not(.drop), .label { display: flex; align-items: baseline; justify-content: space-between; gap: 8px;
                         font-weight: 600; font-size: 14px; }
.type { font-weight: 500; font-size: 12px; color: var(--muted); font-family: var(--mono); }
.hint { color: var(--muted); font-size: 12.5px; }
input, select, textarea { width: 100%; font: inherit; color: var(--text); background: var(--field);
  border: 1px solid var(--border); border-radius: 9px; padding: 9px 12px; outline: none;
  transition: border-color .15s, box-shadow .15s; }
textarea { min-height: 96px; resize: vertical; }
input:focus, select:focus, textarea:focus { border-color: var(--accent); box-shadow: 0 0 0 3px var(--accent-soft); }
input::placeholder, textarea::placeholder { color: var(--muted); opacity: .7; }
.invalid input, .invalid select, .invalid textarea, .invalid .drop { border-color: var(--danger); }
.field-error { color: var(--danger); font-size: 12.5px; }
.row { display: flex; gap: 8px; }
.row input { flex: 1; }
button { font: inherit; font-weight: 600; border-radius: 9px; padding: 9px 18px; cursor: pointer;
         border: 1px solid var(--border); background: var(--card); color: var(--text); }
button:hover { border-color: var(--muted); }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; min-width: 120px; }
button.primary:hover { background: var(--accent-hover); border-color: var(--accent-hover); }
button:disabled { opacity: .55; cursor: default; }
.actions { display: flex; gap: 10px; margin-top: 6px; }
.meta { display: flex; flex-wrap: wrap; gap: 6px; margin: -4px 0 18px; }
.chip { font-size: 12.5px; padding: 2px 9px; border-radius: 999px; background: var(--track); color: var(--muted); }
.chip b { color: var(--text); font-weight: 600; }
.metrics { flex-basis: 100%; color: var(--muted); font-size: 13px; margin-top: 4px; }
.chip.task { background: var(--accent-soft); color: var(--accent); font-weight: 600; }
.divider { border: 0; border-top: 1px solid var(--border); margin: 4px 0 18px; }
.drop { display: flex; align-items: center; gap: 14px; padding: 12px; border: 1.5px dashed var(--border);
        border-radius: 10px; cursor: pointer; background: var(--field); }
.drop:hover, .drop.over { border-color: var(--accent); background: var(--accent-soft); }
.drop input[type=file] { position: absolute; width: 1px; height: 1px; opacity: 0; }
.drop-name { font-weight: 600; font-size: 14px; word-break: break-all; }
.thumb { width: 72px; height: 72px; border-radius: 8px; background: var(--track); object-fit: contain;
         image-rendering: pixelated; flex: none; }
.empty { color: var(--muted); padding: 36px 8px; text-align: center; }
.error { background: var(--danger-soft); border: 1px solid var(--danger-border); color: var(--danger);
         border-radius: 10px; padding: 12px 14px; margin-bottom: 16px; }
.error strong { display: block; margin-bottom: 2px; }
.error div { color: var(--text); font-size: 14px; word-break: break-word; }
.result-head { display: flex; align-items: flex-end; justify-content: space-between; gap: 16px; margin-bottom: 20px; }
.result-head .muted { color: var(--muted); font-size: 13px; }
.prediction { font-size: 34px; font-weight: 700; letter-spacing: -.02em; line-height: 1.15; word-break: break-word; }
.confidence { text-align: right; color: var(--muted); font-size: 13px; white-space: nowrap; }
.confidence b { display: block; color: var(--text); font-size: 20px; }
.bars { display: flex; flex-direction: column; gap: 8px; }
.bar-row { display: grid; grid-template-columns: minmax(60px, 150px) 1fr 58px; align-items: center; gap: 12px; }
.bar-label { font-weight: 550; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar-track { height: 22px; border-radius: 6px; background: var(--track); overflow: hidden; }
.bar-fill { height: 100%; border-radius: 6px; background: var(--bar); transition: width .35s ease; min-width: 2px; }
.bar-row.top .bar-fill { background: var(--accent); }
.bar-row.top .bar-label, .bar-row.top .bar-pct { color: var(--accent); font-weight: 700; }
.bar-pct { text-align: right; font-variant-numeric: tabular-nums; font-size: 14px; }
details { margin-top: 22px; border-top: 1px solid var(--border); padding-top: 14px; }
summary { cursor: pointer; color: var(--muted); font-size: 13.5px; }
pre { font-family: var(--mono); font-size: 12.5px; background: var(--track); border-radius: 8px; padding: 12px;
      overflow: auto; max-height: 260px; margin: 10px 0 0; }
footer { text-align: center; color: var(--muted); font-size: 13px; margin: 8px 0 28px; }
.spinner { display: inline-block; width: 14px; height: 14px; border: 2px solid rgba(255,255,255,.5);
           border-top-color: #fff; border-radius: 50%; animation: spin .7s linear infinite; vertical-align: -2px; }
@keyframes spin { to { transform: rotate(360deg); } }
"""

_BODY = """
<header class="top">
  <div class="brand"><span class="logo">f</span>forgeml <span class="sub">model server</span></div>
  <nav>
    <span id="server-status" class="pill" title="GET /readyz"><span class="dot"></span><span id="server-status-text">checking</span></span>
    <a href="/docs">API docs</a>
    <a href="/metrics">Metrics</a>
  </nav>
</header>
<main>
  <section class="card" id="input-card" aria-labelledby="input-title">
    <h2 id="input-title">Input</h2>
    <form class="field" id="api-key-row" hidden>
      <label for="api-key">API key <span class="type">X-API-Key</span></label>
      <div class="row">
        <input id="api-key" data-testid="api-key" type="password" autocomplete="off" placeholder="the server's API key">
        <button type="submit" id="api-key-apply" data-testid="api-key-apply">Connect</button>
      </div>
      <span class="hint">Kept in this tab only (sessionStorage).</span>
    </form>
    <div class="field">
      <label for="model-select">Model</label>
      <select id="model-select" data-testid="model-select" disabled><option>Loading models…</option></select>
    </div>
    <div id="model-meta" class="meta" data-testid="model-meta"></div>
    <hr class="divider">
    <form id="predict-form" data-testid="predict-form" data-completed="0" novalidate autocomplete="off">
      <div id="fields"></div>
      <div class="actions">
        <button type="submit" id="predict-button" data-testid="predict-button" class="primary" disabled>Predict</button>
        <button type="button" id="clear-button" data-testid="clear-button">Clear</button>
      </div>
    </form>
  </section>
  <section class="card" id="result-card" aria-labelledby="result-title" aria-live="polite">
    <h2 id="result-title">Prediction</h2>
    <div id="error" data-testid="error" class="error" role="alert" hidden>
      <strong id="error-title"></strong><div id="error-detail"></div>
    </div>
    <div id="placeholder" class="empty">Fill in the form and press <b>Predict</b>.</div>
    <div id="result" data-testid="result" hidden>
      <div class="result-head">
        <div>
          <div class="muted" id="result-target"></div>
          <div id="prediction" data-testid="prediction" class="prediction"></div>
        </div>
        <div id="confidence" class="confidence"></div>
      </div>
      <div id="bars" data-testid="bars" class="bars" role="list" aria-label="class probabilities"></div>
      <details id="raw">
        <summary>Response JSON <span id="latency"></span></summary>
        <pre id="raw-json" data-testid="raw-json"></pre>
      </details>
    </div>
  </section>
</main>
<footer>Served by forgeml on ONNX Runtime<span id="model-count"></span></footer>
"""

_JS = r"""
(() => {
  "use strict";
  const KEY_REQUIRED = document.body.dataset.apiKeyRequired === "true";
  const STORE = "forgeml.apiKey";
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "for" || k === "list") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  };
  const STATUS = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                  413: "Request too large", 422: "Invalid input", 429: "Too many requests",
                  500: "Server error", 503: "Not ready"};
  let models = [];
  let current = null;
  let images = {};  // field name -> base64 of the chosen file's bytes

  const keyInput = $("api-key");
  if (KEY_REQUIRED) {
    $("api-key-row").hidden = false;
    try { keyInput.value = sessionStorage.getItem(STORE) || ""; } catch (e) { /* storage disabled */ }
  }
  const headers = (json) => {
    const h = json ? {"Content-Type": "application/json"} : {};
    const key = KEY_REQUIRED ? keyInput.value.trim() : "";
    if (key) h["X-API-Key"] = key;
    return h;
  };
  const rememberKey = () => {
    try {
      const key = keyInput.value.trim();
      if (key) sessionStorage.setItem(STORE, key); else sessionStorage.removeItem(STORE);
    } catch (e) { /* storage disabled */ }
  };

  // ----- errors
  function showError(title, detail) {
    $("error-title").textContent = title;
    $("error-detail").textContent = detail || "";
    $("error").hidden = false;
  }
  function clearError() {
    $("error").hidden = true;
    for (const f of document.querySelectorAll(".field.invalid")) {
      f.classList.remove("invalid");
      const msg = f.querySelector(".field-error");
      if (msg) msg.remove();
      const input = f.querySelector("[data-field]");
      if (input) input.removeAttribute("aria-invalid");
    }
  }
  function markField(name, message) {
    const input = document.querySelector(`#fields [data-field="${CSS.escape(name)}"]`);
    if (!input) return;
    const wrap = input.closest(".field");
    wrap.classList.add("invalid");
    input.setAttribute("aria-invalid", "true");
    if (message) wrap.append(el("span", {class: "field-error", text: message}));
  }
  async function responseError(res) {
    let detail = "";
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (body && typeof body.detail === "string") detail = body.detail;
    else if (body && Array.isArray(body.detail)) detail = body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    else if (body) detail = JSON.stringify(body);
    else detail = res.statusText;
    showError(`${res.status} · ${STATUS[res.status] || "Error"}`, detail);
    return body || {};
  }

  // ----- server status
  async function checkReady() {
    const pill = $("server-status");
    try {
      const res = await fetch("/readyz", {cache: "no-store"});
      pill.className = "pill " + (res.ok ? "ready" : "down");
      $("server-status-text").textContent = res.ok ? "ready" : "not ready";
    } catch (e) {
      pill.className = "pill down";
      $("server-status-text").textContent = "offline";
    }
  }

  // ----- models
  const modelId = (m) => `${m.name}:${m.version}`;
  async function loadModels() {
    clearError();
    const select = $("model-select");
    let res;
    try {
      res = await fetch("/v1/models", {headers: headers(false), cache: "no-store"});
    } catch (e) {
      showError("Cannot reach the server", String(e));
      return;
    }
    if (!res.ok) {
      models = [];
      select.replaceChildren(el("option", {text: res.status === 401 ? "Enter the API key to list the models" : "No models"}));
      select.disabled = true;
      selectModel(null);
      await responseError(res);
      if (res.status === 401) keyInput.focus();
      return;
    }
    models = (await res.json()).models || [];
    const previous = current ? modelId(current) : null;
    const groups = new Map();
    for (const m of models) {
      if (!groups.has(m.name)) groups.set(m.name, []);
      groups.get(m.name).push(m);
    }
    const options = [];
    for (const [name, versions] of groups) {
      const group = el("optgroup", {label: name});
      for (const m of versions) {
        group.append(el("option", {value: modelId(m), text: `${modelId(m)}${m.default && versions.length > 1 ? "  · default version" : ""}`}));
      }
      options.push(group);
    }
    select.replaceChildren(...options);
    select.disabled = models.length === 0;
    const first = models.find((m) => m.default) || models[0];
    const pick = models.find((m) => modelId(m) === previous) || first;
    if (pick) select.value = modelId(pick);
    $("model-count").textContent = ` · ${groups.size} model${groups.size === 1 ? "" : "s"}, ${models.length} version${models.length === 1 ? "" : "s"}`;
    selectModel(pick || null);
  }

  function fmtMetric(k, v) {
    if (typeof v !== "number") return null;
    const pct = ["accuracy", "f1_macro", "f1", "precision", "recall"].includes(k);
    return pct ? `${(v * 100).toFixed(1)}%` : (Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(3));
  }
  function renderMeta(m) {
    const meta = $("model-meta");
    meta.replaceChildren();
    if (!m) return;
    const chip = (label, value, cls) => el("span", {class: "chip" + (cls ? " " + cls : "")}, label ? label + " " : "", value != null ? el("b", {text: String(value)}) : null);
    meta.append(el("span", {class: "chip task", text: m.task}));
    meta.append(chip("model", m.model));
    meta.append(chip("precision", m.precision));
    meta.append(chip("target", m.target));
    const metrics = m.test_metrics || {};
    const names = {accuracy: "accuracy", roc_auc: "ROC AUC", f1_macro: "F1", r2: "R²", mae: "MAE", rmse: "RMSE"};
    const shown = Object.keys(names).filter((k) => typeof metrics[k] === "number").slice(0, 3);
    if (shown.length) {
      meta.append(el("div", {class: "metrics", text: "Test set: " + shown.map((k) => `${names[k]} ${fmtMetric(k, metrics[k])}`).join(" · ")}));
    }
  }

  // ----- the form
  const safeId = (name) => "field-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
  function fieldFor(spec) {
    const id = safeId(spec.name);
    const label = el("label", {for: id}, spec.name, el("span", {class: "type", text: spec.type}));
    const wide = spec.type === "text" || spec.type === "image";
    const wrap = el("div", {class: "field" + (wide ? " wide" : ""), "data-testid": "field-" + spec.name});
    if (spec.type === "numeric") {
      wrap.append(label, el("input", {id, type: "number", step: "any", placeholder: "missing if empty", "data-field": spec.name, "data-type": "numeric"}));
    } else if (spec.type === "categorical") {
      const levels = Array.isArray(spec.levels) ? spec.levels.map(String) : null;
      if (levels && levels.length <= 40) {
        const select = el("select", {id, "data-field": spec.name, "data-type": "categorical"},
                          el("option", {value: "", text: "— missing —"}));
        for (const v of levels) select.append(el("option", {value: v, text: v}));
        wrap.append(label, select);
      } else {
        const input = el("input", {id, type: "text", placeholder: "missing if empty", "data-field": spec.name, "data-type": "categorical"});
        wrap.append(label, input);
        if (levels) {
          const list = el("datalist", {id: id + "-levels"});
          for (const v of levels) list.append(el("option", {value: v}));
          input.setAttribute("list", list.id);
          wrap.append(list, el("span", {class: "hint", text: `${levels.length} known values; others count as unseen`}));
        }
      }
    } else if (spec.type === "text") {
      wrap.append(label, el("textarea", {id, placeholder: "type some text", "data-field": spec.name, "data-type": "text"}));
    } else if (spec.type === "image") {
      const input = el("input", {id, type: "file", accept: "image/*", "data-field": spec.name, "data-type": "image"});
      const thumb = el("img", {class: "thumb", alt: ""});
      thumb.hidden = true;
      const name = el("div", {class: "drop-name", text: "Choose an image file"});
      const size = Array.isArray(spec.size) ? `${spec.size[0]}×${spec.size[1]}` : null;
      const mode = {L: "grayscale", RGB: "color"}[spec.mode] || spec.mode;
      const note = el("div", {class: "hint", text: size ? `PNG, JPEG, …; resized to ${size}${mode ? " " + mode : ""}` : "PNG, JPEG, … or drop one here"});
      const drop = el("label", {class: "drop", for: id}, thumb, el("div", {}, name, note), input);
      const take = (file) => {
        if (!file) return;
        const reader = new FileReader();
        reader.onload = () => {
          const url = String(reader.result);
          images[spec.name] = url.slice(url.indexOf(",") + 1);
          thumb.src = url;
          thumb.hidden = false;
          name.textContent = file.name;
          note.textContent = `${(file.size / 1024).toFixed(1)} KB` + (size ? ` · resized to ${size}` : "");
          input.dataset.loaded = "true";
          input.dataset.file = file.name;
        };
        reader.onerror = () => showError("Cannot read the file", String(reader.error));
        input.dataset.loaded = "false";
        reader.readAsDataURL(file);
      };
      input.addEventListener("change", () => take(input.files[0]));
      drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
      drop.addEventListener("dragleave", () => drop.classList.remove("over"));
      drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); take(e.dataTransfer.files[0]); });
      wrap.append(el("span", {class: "label"}, spec.name, el("span", {class: "type", text: "image"})), drop);
    } else {
      wrap.append(label, el("input", {id, type: "text", "data-field": spec.name, "data-type": "other"}));
    }
    return wrap;
  }

  function selectModel(m) {
    current = m;
    images = {};
    renderMeta(m);
    const fields = $("fields");
    fields.replaceChildren(...(m ? m.input_schema.map(fieldFor) : []));
    $("predict-button").disabled = !m;
    resetResult();
  }

  function resetResult() {
    $("result").hidden = true;
    $("placeholder").hidden = false;
    clearError();
  }

  function readRow() {
    const row = {};
    const problems = [];
    for (const input of document.querySelectorAll("#fields [data-field]")) {
      const name = input.dataset.field;
      const type = input.dataset.type;
      if (type === "numeric") {
        if (input.validity.badInput) { problems.push([name, "not a number"]); continue; }
        row[name] = input.value.trim() === "" ? null : Number(input.value);
      } else if (type === "image") {
        if (!(name in images)) { problems.push([name, input.dataset.loaded === "false" ? "still reading the file" : "choose an image file"]); continue; }
        row[name] = images[name];
      } else if (type === "text") {
        row[name] = input.value;
      } else {
        row[name] = input.value === "" ? null : input.value;
      }
    }
    return [row, problems];
  }

  // ----- prediction
  function fmtValue(v) {
    if (typeof v !== "number") return String(v);
    return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toPrecision(6) : String(Number(v.toFixed(4)));
  }
  function renderResult(m, body, ms) {
    $("placeholder").hidden = true;
    $("result").hidden = false;
    const prediction = body.predictions[0];
    $("result-target").textContent = `Predicted ${m.target}`;
    $("prediction").textContent = fmtValue(prediction);
    const bars = $("bars");
    bars.replaceChildren();
    $("confidence").replaceChildren();
    const proba = body.probabilities && body.probabilities[0];
    if (proba && body.labels) {
      const rows = body.labels.map((label, i) => ({label: String(label), p: proba[i]})).sort((a, b) => b.p - a.p);
      $("confidence").append(el("b", {text: `${(rows[0].p * 100).toFixed(1)}%`}), "confidence");
      rows.forEach((r, i) => {
        const pct = `${(r.p * 100).toFixed(1)}%`;
        bars.append(el("div", {class: "bar-row" + (i === 0 ? " top" : ""), role: "listitem", "data-testid": "bar",
                               "data-label": r.label, "data-probability": String(r.p)},
          el("span", {class: "bar-label", text: r.label, title: r.label}),
          el("div", {class: "bar-track"}, el("div", {class: "bar-fill", style: `width: ${(r.p * 100).toFixed(2)}%`})),
          el("span", {class: "bar-pct", text: pct})));
      });
    }
    $("latency").textContent = `· ${modelId(m)} · ${Math.round(ms)} ms`;
    $("raw-json").textContent = JSON.stringify(body, null, 2);
  }

  const form = $("predict-form");
  const done = () => { form.dataset.completed = String(Number(form.dataset.completed || 0) + 1); };
  async function predict(event) {
    event.preventDefault();
    if (!current) return;
    clearError();
    const m = current;
    const [row, problems] = readRow();
    if (problems.length) {
      for (const [name, msg] of problems) markField(name, msg);
      showError("Check the form", problems.map(([n, msg]) => `${n}: ${msg}`).join("; "));
      done();
      return;
    }
    if (KEY_REQUIRED) rememberKey();
    const button = $("predict-button");
    button.disabled = true;
    button.replaceChildren(el("span", {class: "spinner"}), " Predicting");
    const url = `/v1/models/${encodeURIComponent(m.name)}/versions/${encodeURIComponent(m.version)}/predict`;
    const tic = performance.now();
    try {
      const res = await fetch(url, {method: "POST", headers: headers(true), body: JSON.stringify({instances: [row]})});
      if (current !== m) return;
      if (!res.ok) {
        $("result").hidden = true;
        $("placeholder").hidden = false;
        const body = await responseError(res);
        if (body.field) markField(body.field, null);
        return;
      }
      renderResult(m, await res.json(), performance.now() - tic);
    } catch (e) {
      showError("Cannot reach the server", String(e));
    } finally {
      button.disabled = !current;
      button.textContent = "Predict";
      done();
    }
  }

  $("predict-form").addEventListener("submit", predict);
  $("model-select").addEventListener("change", (e) => selectModel(models.find((m) => modelId(m) === e.target.value) || null));
  $("clear-button").addEventListener("click", () => selectModel(current));
  $("api-key-row").addEventListener("submit", (e) => { e.preventDefault(); rememberKey(); loadModels(); });

  checkReady();
  loadModels();
})();
"""


def render(api_key_required: bool = False) -> str:
    """The page; `api_key_required` shows the API key field (the server answers 401 without the key)."""
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>forgeml model server</title>\n"
            "<link rel=\"icon\" href=\"data:,\">\n"
            f"<style>{_CSS}</style>\n</head>\n"
            f"<body data-api-key-required=\"{'true' if api_key_required else 'false'}\">{_BODY}"
            f"<script>{_JS}</script>\n</body>\n</html>\n")
