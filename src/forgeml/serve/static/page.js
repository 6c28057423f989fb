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
    const names = {accuracy: "accuracy", roc_auc: "ROC AUC", f1_macro: "F1", r2: "R²", mase: "MASE", mae: "MAE", rmse: "RMSE"};
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
    fields.replaceChildren(...(!m ? [] : isForecast(m) ? [historyField(m)]
      : isOwnBody(m) ? m.input_schema.map((spec) => bodyField(spec, m.example)) : m.input_schema.map(fieldFor)));
    $("predict-button").disabled = !m;
    $("predict-button").textContent = buttonText();
    $("result-title").textContent = isForecast(m) ? "Forecast" : isOwnBody(m) ? "Answer" : "Prediction";
    resetResult();
  }
  const capital = (word) => word.charAt(0).toUpperCase() + word.slice(1);
  const buttonText = () => (isForecast(current) ? "Forecast" : isOwnBody(current) ? capital(current.route) : "Predict");

  // ----- models answering on a route of their own with a JSON body of a few fields (a generator: "generate" with
  // n, seed and a class): a field per request field (a whole number, or a choice when the schema lists the values),
  // filled from the model's example; the answer's images are shown, the rest of it as JSON
  const isOwnBody = (m) => Boolean(m && m.route !== "predict" && m.route !== "forecast");
  function bodyField(spec, example) {
    const id = safeId(spec.name);
    const schema = spec.schema || {};
    let input;
    if (Array.isArray(schema.enum)) {
      input = el("select", {id, "data-field": spec.name, "data-type": "choice"}, el("option", {value: "", text: "— default —"}));
      for (const v of schema.enum) input.append(el("option", {value: String(v), text: String(v)}));
    } else {
      input = el("input", {id, type: spec.type === "integer" ? "number" : "text", "data-field": spec.name,
                           "data-type": spec.type === "integer" ? "integer" : "string", placeholder: "default if empty"});
      if (spec.type === "integer") input.step = "1";
      if (schema.minimum != null) input.min = String(schema.minimum);
      if (schema.maximum != null) input.max = String(schema.maximum);
    }
    if (example && example[spec.name] != null) input.value = String(example[spec.name]);
    return el("div", {class: "field", "data-testid": "field-" + spec.name},
      el("label", {for: id}, spec.name, el("span", {class: "type", text: spec.type})), input,
      spec.description ? el("span", {class: "hint", text: spec.description}) : null);
  }
  function readBody() {
    const body = {};
    const problems = [];
    for (const input of document.querySelectorAll("#fields [data-field]")) {
      const value = input.value.trim();
      if (value === "") continue;  // the server's default
      if (input.dataset.type === "integer") {
        if (input.validity.badInput || !Number.isInteger(Number(value))) problems.push([input.dataset.field, "not a whole number"]);
        else body[input.dataset.field] = Number(value);
      } else body[input.dataset.field] = value;
    }
    return [body, problems];
  }
  function renderOwnBody(m, body, ms) {
    $("placeholder").hidden = true;
    $("result").hidden = false;
    $("confidence").replaceChildren();
    const bars = $("bars");
    bars.replaceChildren();
    const shown = {...body};
    if (Array.isArray(body.images)) {
      const shape = Array.isArray(body.shape) ? ` · ${body.shape.slice(1).join("×")}` : "";
      $("result-target").textContent = "Drawn images";
      $("prediction").textContent = `${body.images.length} image${body.images.length === 1 ? "" : "s"}${shape}` +
        (body.seed != null ? ` · seed ${body.seed}` : "");
      const gallery = el("div", {class: "gallery", role: "list"});
      body.images.forEach((png, i) => {
        const label = Array.isArray(body.labels) && body.labels[i] != null ? String(body.labels[i]) : null;
        gallery.append(el("figure", {role: "listitem"},
          el("img", {src: `data:image/png;base64,${png}`, alt: label ? `drawn for class ${label}` : "drawn image",
                     "data-testid": "drawn-image", "data-label": label ?? ""}),
          label ? el("figcaption", {text: label}) : null));
      });
      bars.append(gallery);
      shown.images = `[${body.images.length} base64 PNG images]`;  // the JSON below stays readable
    } else {
      $("result-target").textContent = `Answer of ${m.route}`;
      $("prediction").textContent = "";
    }
    $("latency").textContent = `· ${modelId(m)} · ${Math.round(ms)} ms`;
    $("raw-json").textContent = JSON.stringify(shown, null, 2);
  }
  async function ownBody(m) {
    const [body, problems] = readBody();
    if (problems.length) {
      for (const [name, msg] of problems) markField(name, msg);
      showError("Check the form", problems.map(([n, msg]) => `${n}: ${msg}`).join("; "));
      return;
    }
    const url = `/v1/models/${encodeURIComponent(m.name)}/versions/${encodeURIComponent(m.version)}/${encodeURIComponent(m.route)}`;
    const tic = performance.now();
    const res = await fetch(url, {method: "POST", headers: headers(true), body: JSON.stringify(body)});
    if (current !== m) return;
    if (!res.ok) {
      $("result").hidden = true;
      $("placeholder").hidden = false;
      const answer = await responseError(res);
      if (answer && answer.field) markField(answer.field, null);
      return;
    }
    renderOwnBody(m, await res.json(), performance.now() - tic);
  }

  // ----- forecasting models (route "forecast"): a history in, the next points of each series out, plotted
  const isForecast = (m) => Boolean(m && m.route === "forecast");
  function historyField(m) {
    const cols = m.input_schema.map((f) => f.name);
    const cell = (v) => (v == null ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    const csv = [cols.join(","), ...(m.example || []).map((r) => cols.map((c) => cell(r[c])).join(","))].join("\n");
    return el("div", {class: "field wide", "data-testid": "field-history"},
      el("label", {for: "field-history"}, "history", el("span", {class: "type", text: "CSV or JSON rows"})),
      el("textarea", {id: "field-history", class: "history", rows: 12, spellcheck: false, value: csv,
                      "data-field": "history", "data-type": "history"}),
      el("span", {class: "hint", text: `Columns ${cols.join(", ")}, as in the training data. Forecasts the next ` +
        `${m.horizon} points of each series; rows after a series' end with ${m.target} empty carry known covariates.`}));
  }
  function parseHistory(text) {
    const trimmed = text.trim();
    if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
      const parsed = JSON.parse(trimmed);
      return Array.isArray(parsed) ? parsed : parsed.history;
    }
    const lines = [];
    let row = [], cell = "", quoted = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (ch === '"') quoted = false; else cell += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") { row.push(cell); cell = ""; }
      else if (ch === "\n" || ch === "\r") {
        if (ch === "\r" && text[i + 1] === "\n") i++;
        row.push(cell); lines.push(row); row = []; cell = "";
      } else cell += ch;
    }
    if (cell !== "" || row.length) { row.push(cell); lines.push(row); }
    const kept = lines.filter((r) => r.some((c) => c.trim() !== ""));
    if (kept.length < 2) throw new Error("give a header line with the column names, then one line per row");
    const header = kept[0].map((c) => c.trim());
    return kept.slice(1).map((r, n) => {
      if (r.length !== header.length) throw new Error(`line ${n + 2} has ${r.length} values; the header has ${header.length}`);
      const obj = {};
      header.forEach((h, j) => {
        const v = r[j].trim();
        obj[h] = v === "" ? null : (Number.isFinite(Number(v)) ? Number(v) : v);
      });
      return obj;
    });
  }
  const SVG_NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs = {}) => {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  };
  function forecastChart(f, levels) {
    const W = 560, H = 220, P = {l: 52, r: 12, t: 10, b: 24};
    const when = (s) => Date.parse(s);
    const xs = [...f.recent.times, ...f.times].map(when);
    const ys = [...f.recent.values, ...f.forecast, ...levels.flatMap((lv) => [...f[`lo_${lv}`], ...f[`hi_${lv}`]])];
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const X = (s) => (P.l + (when(s) - x0) / (x1 - x0 || 1) * (W - P.l - P.r)).toFixed(1);
    const Y = (v) => (H - P.b - (v - y0) / (y1 - y0 || 1) * (H - P.t - P.b)).toFixed(1);
    const chart = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "data-testid": "forecast-chart",
                              "data-series": f.series, "data-points": f.forecast.length,
                              "aria-label": `series ${f.series}: its recent history and the next ${f.forecast.length} points`});
    for (const lv of [...levels].sort((a, b) => b - a)) {  // the widest band first, the narrower over it
      const upper = f.times.map((t, i) => `${X(t)},${Y(f[`hi_${lv}`][i])}`);
      const lower = f.times.map((t, i) => `${X(t)},${Y(f[`lo_${lv}`][i])}`).reverse();
      chart.append(svg("polygon", {points: [...upper, ...lower].join(" "), class: `band band-${lv}`, "data-level": lv}));
    }
    const line = (times, values, cls) => chart.append(svg("polyline", {points: times.map((t, i) => `${X(t)},${Y(values[i])}`).join(" "), class: cls}));
    line(f.recent.times, f.recent.values, "history-line");
    line([f.recent.times.at(-1), ...f.times], [f.recent.values.at(-1), ...f.forecast], "forecast-line");
    const label = (x, y, text, anchor) => { const t = svg("text", {x, y, "text-anchor": anchor, class: "axis"}); t.textContent = text; chart.append(t); };
    const day = (ms) => new Date(ms).toISOString().slice(0, 10);
    label(P.l - 6, Number(Y(y1)) + 4, fmtValue(Number(y1.toPrecision(4))), "end");
    label(P.l - 6, Number(Y(y0)), fmtValue(Number(y0.toPrecision(4))), "end");
    label(P.l, H - 6, day(x0), "start");
    label(W - P.r, H - 6, day(x1), "end");
    return chart;
  }
  function renderForecast(m, body, ms) {
    $("placeholder").hidden = true;
    $("result").hidden = false;
    const shown = body.forecasts.slice(0, 4);
    const first = body.forecasts[0];
    $("result-target").textContent = `Forecast of ${m.target}: the next ${body.horizon} points` +
      (body.forecasts.length > 1 ? ` of ${body.forecasts.length} series` : "");
    $("prediction").textContent = `${fmtValue(first.forecast[0])} … ${fmtValue(first.forecast.at(-1))}`;
    $("confidence").replaceChildren();
    const bars = $("bars");
    bars.replaceChildren(el("div", {class: "legend"}, el("span", {class: "key history-key", text: "history"}),
      el("span", {class: "key forecast-key", text: "forecast"}),
      ...body.levels.map((lv) => el("span", {class: `key band-key band-${lv}`, text: `${lv}% interval`}))));
    for (const f of shown) {
      bars.append(el("figure", {class: "forecast"}, forecastChart(f, body.levels),
                     body.forecasts.length > 1 ? el("figcaption", {text: `series ${f.series}`}) : null));
    }
    if (body.forecasts.length > shown.length) bars.append(el("div", {class: "hint", text: `${body.forecasts.length - shown.length} more series in the response JSON`}));
    $("latency").textContent = `· ${modelId(m)} · ${Math.round(ms)} ms`;
    $("raw-json").textContent = JSON.stringify(body, null, 2);
  }
  async function forecast(m) {
    let rows;
    try {
      rows = parseHistory(document.querySelector('#fields [data-field="history"]').value);
    } catch (e) {
      markField("history", String(e.message || e));
      showError("Check the history", String(e.message || e));
      return;
    }
    const url = `/v1/models/${encodeURIComponent(m.name)}/versions/${encodeURIComponent(m.version)}/forecast`;
    const tic = performance.now();
    const res = await fetch(url, {method: "POST", headers: headers(true), body: JSON.stringify({history: rows})});
    if (current !== m) return;
    if (!res.ok) {
      $("result").hidden = true;
      $("placeholder").hidden = false;
      await responseError(res);
      return;
    }
    renderForecast(m, await res.json(), performance.now() - tic);
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
    if (body.scores) {  // an anomaly detector: the score and the flag
      $("result-target").textContent = "Anomaly score (higher = more anomalous)";
      $("prediction").textContent = `${fmtValue(body.scores[0])} · ${body.is_anomaly[0] ? "anomaly" : "normal"}`;
    } else if (body.clusters) {  // a clustering: the cluster and the distance to its centre
      $("result-target").textContent = "Cluster (distance to its centre)";
      $("prediction").textContent = `cluster ${body.clusters[0]} · ${fmtValue(body.distances[0])}`;
    } else {
      $("result-target").textContent = `Predicted ${m.target}`;
      $("prediction").textContent = fmtValue(body.predictions[0]);
    }
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
    if (isForecast(m)) {
      if (KEY_REQUIRED) rememberKey();
      await busy("Forecasting", () => forecast(m));
      return;
    }
    if (isOwnBody(m)) {
      if (KEY_REQUIRED) rememberKey();
      await busy(capital(m.route), () => ownBody(m));
      return;
    }
    const [row, problems] = readRow();
    if (problems.length) {
      for (const [name, msg] of problems) markField(name, msg);
      showError("Check the form", problems.map(([n, msg]) => `${n}: ${msg}`).join("; "));
      done();
      return;
    }
    if (KEY_REQUIRED) rememberKey();
    const url = `/v1/models/${encodeURIComponent(m.name)}/versions/${encodeURIComponent(m.version)}/predict`;
    await busy("Predicting", async () => {
      const tic = performance.now();
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
    });
  }
  // the button shows `label` with a spinner while `work` runs; the form counts the attempt when it ends
  async function busy(label, work) {
    const button = $("predict-button");
    button.disabled = true;
    button.replaceChildren(el("span", {class: "spinner"}), " " + label);
    try {
      await work();
    } catch (e) {
      showError("Cannot reach the server", String(e));
    } finally {
      button.disabled = !current;
      button.textContent = buttonText();
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
