// pixelmind web page: pick a model, drop an image, see the result; browse training runs.
// Plain JS, no build step, no network beyond this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const KEY_STORE = "pixelmind.apiKey";
const state = { models: [], file: null, fileUrl: null, urls: [], busy: false };

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function fmt(v, digits = 4) {
  if (typeof v !== "number") return v === null || v === undefined ? "–" : String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(digits)).toString();
}

function showMessage(text) {
  $("#message-text").textContent = text;
  $("#message").hidden = false;
}

function clearMessage() {
  $("#message").hidden = true;
}

function apiKey() {
  try { return localStorage.getItem(KEY_STORE) || ""; } catch { return ""; }
}

function objectUrl(blob) {  // remembered, so a new result frees the old images
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  return url;
}

function freeUrls() {
  state.urls.forEach((u) => URL.revokeObjectURL(u));
  state.urls = [];
}

// fetch with the API key; non-2xx responses throw Error("<status>: <error message>")
async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  const key = apiKey();
  if (key) headers.set("X-API-Key", key);
  let res;
  try {
    res = await fetch(path, { ...opts, headers });
  } catch (e) {
    throw new Error(`the server could not be reached (${e.message})`);
  }
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const body = await res.clone().json();
      detail = body.error || (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body));
    } catch {
      detail = (await res.text()).slice(0, 300) || detail;
    }
    const hint = res.status === 401 || res.status === 403 ? " (set the API key at the top right)" : "";
    throw new Error(`${res.status}: ${detail}${hint}`);
  }
  return res;
}

// ---------- tabs ----------

const tabHooks = { runs: () => loadRuns() };  // what a tab loads when it is opened (review.js adds its own)

function tabNames() {  // the tabs shown (review only when the server has a review folder)
  return [...document.querySelectorAll(".tabs [role=tab]")].filter((t) => !t.hidden).map((t) => t.id.slice(4));
}

function selectTab(name) {
  for (const t of tabNames()) {
    const on = t === name;
    const tab = $(`#tab-${t}`);
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`#view-${t}`).hidden = !on;
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (tabHooks[name]) tabHooks[name]();
}

function initTabs() {
  for (const t of tabNames()) $(`#tab-${t}`).addEventListener("click", () => selectTab(t));
  $(".tabs").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const tabs = tabNames();
    const i = tabs.findIndex((t) => $(`#tab-${t}`).getAttribute("aria-selected") === "true");
    const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    selectTab(next);
    $(`#tab-${next}`).focus();
  });
  const wanted = location.hash.slice(1);
  selectTab(tabNames().includes(wanted) ? wanted : "predict");
}

// ---------- models ----------

async function loadHealth() {
  try {
    const res = await fetch("/health");
    if (!res.ok) throw new Error(String(res.status));
    const h = await res.json();
    $("#health").textContent = `${h.status} · ${h.models} model${h.models === 1 ? "" : "s"}`;
  } catch {
    $("#health").textContent = "server unreachable";
  }
}

async function loadModels() {
  const select = $("#model");
  const previous = select.value;
  try {
    state.models = await (await api("/v1/models")).json();
  } catch (e) {
    state.models = [];
    select.replaceChildren(el("option", { value: "", text: "no models" }));
    showMessage(`Could not list the models: ${e.message}`);
    return updateModelInfo();
  }
  select.replaceChildren(...state.models.map((m) =>
    el("option", { value: m.name, text: `${m.name} — ${m.task} (${m.model})` })));
  if (state.models.some((m) => m.name === previous)) select.value = previous;
  updateModelInfo();
}

function currentModel() {
  return state.models.find((m) => m.name === $("#model").value) || null;
}

function updateModelInfo() {
  const m = currentModel();
  $("#topk-field").hidden = !m || m.task !== "classify";
  const methods = (m && m.explain_methods) || [];
  $("#explain-field").hidden = !methods.length;
  const select = $("#explain-method");
  if (select.dataset.model !== (m && m.name)) {
    select.replaceChildren(...methods.map((x) => el("option", { value: x, text: x })));
    select.dataset.model = m ? m.name : "";
  }
  $("#run").disabled = !m || !state.file || state.busy;
  if (!m) return ($("#model-info").textContent = "");
  const classes = Array.isArray(m.classes) ? m.classes.length : m.classes;
  const size = Array.isArray(m.input_size) ? m.input_size.join("×") : m.input_size;
  const parts = [`task ${m.task}`, size ? `input ${size}` : null, classes ? `${classes} classes` : null,
    m.sha256 ? `sha256 ${String(m.sha256).slice(0, 12)}` : null];
  $("#model-info").textContent = parts.filter(Boolean).join(" · ");
  if (m.task === "classify" && classes) $("#topk").max = String(classes);
}

// ---------- input ----------

function setFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) return showMessage(`${file.name} is not an image`);
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  state.file = file;
  state.fileUrl = URL.createObjectURL(file);
  $("#drop").classList.add("has-file");
  $("#drop").querySelector("strong").textContent = file.name;
  predict();
}

function initInput() {
  const drop = $("#drop");
  $("#file").addEventListener("change", (e) => setFile(e.target.files[0]));
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); setFile(e.dataTransfer.files[0]); });
  window.addEventListener("dragover", (e) => e.preventDefault());  // a miss must not open the file
  window.addEventListener("drop", (e) => e.preventDefault());
  window.addEventListener("paste", (e) => {
    const f = [...(e.clipboardData?.files || [])].find((x) => x.type.startsWith("image/"));
    if (f) setFile(f);
  });
  $("#model").addEventListener("change", () => { updateModelInfo(); if (state.file) predict(); });
  $("#predict-form").addEventListener("submit", (e) => { e.preventDefault(); predict(); });
  for (const id of ["#explain", "#explain-method"]) $(id).addEventListener("change", () => { if (state.file) predict(); });
}

// ---------- predict ----------

async function request(model, render) {
  const q = new URLSearchParams({ render: String(render) });
  if (model.task === "classify") q.set("topk", $("#topk").value || "5");
  const body = new FormData();
  body.append("file", state.file, state.file.name || "image.png");
  return api(`/v1/models/${encodeURIComponent(model.name)}/predict?${q}`, { method: "POST", body });
}

function resultHeader(res) {
  try { return JSON.parse(res.headers.get("X-Pixelmind-Result") || "{}"); } catch { return {}; }
}

async function rendered(model) {  // -> {url, result} for render=true (a PNG, or JSON when there is none)
  const res = await request(model, true);
  if ((res.headers.get("content-type") || "").includes("application/json")) {
    const j = await res.json();
    return { url: null, result: j.result || j, meta: j };
  }
  return { url: objectUrl(await res.blob()), result: resultHeader(res), meta: {} };
}

async function predict() {
  const model = currentModel();
  if (!model || !state.file || state.busy) return updateModelInfo();
  clearMessage();
  state.busy = true;
  updateModelInfo();
  const box = $("#result");
  box.setAttribute("aria-busy", "true");
  box.replaceChildren(el("p", { class: "muted", text: `Running ${model.name}…` }));
  const t0 = performance.now();
  try {
    freeUrls();
    const view = await (TASKS[model.task] || showGeneric)(model);
    const ms = Math.round(performance.now() - t0);
    box.replaceChildren(el("p", { class: "result-head" },
      el("strong", { text: model.name }), ` · ${model.task} · ${ms} ms round trip`), view);
    box.dataset.task = model.task;
    if (model.index) await appendSection(box, "Searching the index…", "Search", () => neighboursView(model));
    if ($("#explain").checked && (model.explain_methods || []).length) {
      await appendSection(box, "Explaining…", "Explanation", () => explainView(model));
    }
  } catch (e) {
    box.replaceChildren(el("p", { class: "muted", text: "No result." }));
    showMessage(`Prediction failed: ${e.message}`);
  } finally {
    state.busy = false;
    box.setAttribute("aria-busy", "false");
    updateModelInfo();
  }
}

async function appendSection(box, waiting, what, make) {  // a follow-up view under the result; its failure is a message
  const pending = el("p", { class: "muted", text: waiting });
  box.append(pending);
  try {
    pending.replaceWith(await make());
  } catch (e) {
    pending.remove();
    showMessage(`${what} failed: ${e.message}`);
  }
}

function inputFigure(caption = "Input") {
  return el("figure", { class: "thumb" },
    el("img", { src: state.fileUrl, alt: `Input image ${state.file.name || ""}`.trim() }),
    el("figcaption", { text: caption }));
}

function statsList(pairs) {
  return el("dl", { class: "stats" }, pairs.filter(([, v]) => v !== undefined && v !== null)
    .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

function jsonTable(obj) {
  const rows = Object.entries(obj || {}).map(([k, v]) => el("tr", {},
    el("th", { scope: "row", text: k }),
    el("td", {}, typeof v === "object" && v !== null ? el("code", { text: JSON.stringify(v) }) : fmt(v))));
  return el("table", { class: "json" }, el("caption", { text: "Result" }), el("tbody", {}, rows));
}

async function showClassify(model) {
  const j = await (await request(model, false)).json();
  const r = j.result || {};
  const top = r.topk && r.topk.length ? r.topk : [{ label: r.label, prob: r.prob }];
  const bars = el("ol", { class: "bars", "aria-label": "Top classes" }, top.map((t, i) => {
    const pct = `${(100 * (t.prob || 0)).toFixed(1)}%`;
    return el("li", { class: `bar${i === 0 ? " best" : ""}` },
      el("span", { class: "bar-label", text: String(t.label) }),
      el("span", { class: "bar-track", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100",
        "aria-valuenow": (100 * (t.prob || 0)).toFixed(1), "aria-label": `${t.label}: ${pct}` },
      el("span", { class: "bar-fill", style: { width: pct } })),
      el("span", { class: "bar-value", text: pct }));
  }));
  return el("div", { class: "split" }, inputFigure(), el("div", { class: "grow" },
    el("p", { class: "verdict" }, el("strong", { text: String(r.label) }), ` (${(100 * (r.prob || 0)).toFixed(1)}%)`),
    bars, statsList([["model time", j.ms !== undefined ? `${fmt(j.ms)} ms` : null], ["batch size", j.batch_size]])));
}

function compareSlider(beforeUrl, afterUrl, w, h) {
  const before = el("img", { class: "before", src: beforeUrl, alt: "Input image (left of the divider)" });
  const after = el("img", { class: "after", src: afterUrl, alt: "Enhanced image (right of the divider)" });
  const clip = el("div", { class: "before-clip" }, before);
  const range = el("input", { type: "range", class: "compare-range", min: "0", max: "100", value: "50", step: "0.5",
    "aria-label": "Divider position: input on the left, enhanced on the right" });
  const divider = el("div", { class: "divider", "aria-hidden": "true" }, el("span", { class: "knob" }));
  const box = el("div", { class: "compare", style: { aspectRatio: `${w} / ${h}`, width: `min(100%, ${Math.max(w, 420)}px)` } },
    after, clip, range, divider, el("span", { class: "tag tag-l", text: "input" }), el("span", { class: "tag tag-r", text: "enhanced" }));
  const set = () => {
    clip.style.clipPath = `inset(0 ${100 - range.value}% 0 0)`;
    divider.style.left = `${range.value}%`;
  };
  range.addEventListener("input", set);
  set();
  return box;
}

async function showEnhance(model) {
  const { url, result: r } = await rendered(model);
  if (!url) throw new Error("the server sent no image");
  const w = r.width || 1, h = r.height || 1;
  const name = (state.file.name || "image").replace(/\.[^.]+$/, "");
  return el("div", {},
    compareSlider(state.fileUrl, url, w, h),
    statsList([["input", r.input_width && `${r.input_width} × ${r.input_height}`], ["output", `${r.width} × ${r.height}`],
      ["scale", r.scale && `×${r.scale}`], ["model time", r.ms !== undefined ? `${fmt(r.ms)} ms` : null]]),
    el("a", { class: "button", href: url, download: `${name}_enhanced.png`, text: "Download enhanced PNG" }));
}

function base64Blob(b64, type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

async function showCompress(model) {
  const [img, json] = await Promise.all([rendered(model), request(model, false).then((r) => r.json())]);
  const r = { ...(json.result || {}), ...img.result };
  const name = (state.file.name || "image").replace(/\.[^.]+$/, "");
  const ratio = r.bytes ? `${fmt(state.file.size / r.bytes, 3)} : 1 vs. the uploaded file` : null;
  const link = json.bitstream_base64
    ? el("a", { class: "button", href: objectUrl(base64Blob(json.bitstream_base64, "application/octet-stream")),
      download: `${name}.pmc`, text: `Download ${name}.pmc (${r.bytes} bytes)` })
    : el("p", { class: "muted", text: "The server sent no bitstream." });
  return el("div", { class: "split" },
    el("figure", { class: "decoded" }, img.url ? el("img", { src: img.url, alt: "Decoded image after compression" }) : null,
      el("figcaption", { text: "Decoded from the bitstream" })),
    el("div", { class: "grow" }, statsList([["size", r.bytes !== undefined ? `${r.bytes} bytes` : null],
      ["bits per pixel", r.bpp !== undefined ? fmt(r.bpp, 4) : null], ["PSNR", r.psnr !== undefined ? `${fmt(r.psnr, 4)} dB` : null],
      ["image", r.width && `${r.width} × ${r.height}`], ["ratio", ratio], ["model time", r.ms !== undefined ? `${fmt(r.ms)} ms` : null]]),
    link, inputFigure("Original")));
}

async function showGeneric(model) {  // tasks this page does not know: the rendered image and the JSON
  const { url, result } = await rendered(model);
  return el("div", { class: "split" },
    url ? el("figure", { class: "decoded" }, el("img", { src: url, alt: `Rendered ${model.task} result` }),
      el("figcaption", { text: `Rendered ${model.task} result` })) : inputFigure(),
    el("div", { class: "grow" }, jsonTable(result)));
}

async function explainView(model) {  // overlays next to the prediction, each with its faithfulness
  const q = new URLSearchParams({ method: $("#explain-method").value });
  const body = new FormData();
  body.append("file", state.file, state.file.name || "image.png");
  const j = await (await api(`/v1/models/${encodeURIComponent(model.name)}/explain?${q}`, { method: "POST", body })).json();
  const rows = j.explanations || [];
  const figures = rows.map((r) => el("figure", { class: "thumb explanation" },
    el("img", { src: objectUrl(base64Blob(r.overlay_png_base64, "image/png")), alt: `${j.method} map of ${r.target}` }),
    el("figcaption", {}, el("strong", { text: r.target }),
      r.deletion_auc !== undefined ? el("span", { class: "muted",
        text: ` deletion AUC ${fmt(r.deletion_auc, 3)} (random ${fmt(r.random_deletion_auc, 3)}), ` +
          `insertion ${fmt(r.insertion_auc, 3)} (random ${fmt(r.random_insertion_auc, 3)})` }) : null)));
  return el("section", { class: "explain", "aria-label": "Explanation" },
    el("h2", { text: `Explanation (${j.method})` }),
    rows.length ? el("div", { class: "split" }, inputFigure(), ...figures)
      : el("p", { class: "muted", text: "Nothing to explain: no class, box or region was predicted." }),
    el("p", { class: "muted", text: "Deletion: lower than random is better; insertion: higher than random is better." }));
}

async function showEmbed(model) {  // the vector's size and first values; neighbours follow when there is an index
  const body = new FormData();
  body.append("file", state.file, state.file.name || "image.png");
  const j = await (await api(`/v1/models/${encodeURIComponent(model.name)}/embed`, { method: "POST", body })).json();
  const head = j.embedding.slice(0, 8).map((v) => fmt(v, 3)).join(", ");
  return el("div", { class: "split" }, inputFigure(), el("div", { class: "grow" },
    el("p", { class: "verdict" }, el("strong", { text: `${j.dim}-value embedding` })),
    statsList([["first values", `${head}${j.dim > 8 ? ", …" : ""}`], ["model time", `${fmt(j.ms)} ms`],
      ["index", model.index ? `${model.index.count} images (${model.index.kind})` : "none (serve --index)"]])));
}

async function neighboursView(model, k = 8) {  // the most similar images of the model's index, with their scores
  const body = new FormData();
  body.append("file", state.file, state.file.name || "image.png");
  const j = await (await api(`/v1/models/${encodeURIComponent(model.name)}/search?k=${k}`, { method: "POST", body })).json();
  const figures = await Promise.all(j.neighbours.map(async (n, i) => {
    const name = n.source.split(/[\\/]/).pop();
    let img = el("span", { class: "muted", text: "(image unavailable)" });
    try {
      img = el("img", { src: objectUrl(await (await api(n.image)).blob()), alt: `Neighbour ${i + 1}: ${name}` });
    } catch { /* a gallery file gone since indexing: the name and score still show */ }
    return el("figure", { class: "thumb neighbour" }, img,
      el("figcaption", {}, el("strong", { text: `${i + 1}. ${fmt(n.score, 3)}` }), el("br"), el("span", { class: "muted", text: name })));
  }));
  return el("section", { class: "neighbours", "aria-label": "Nearest neighbours" },
    el("h2", { text: `Nearest neighbours in the index (${model.index.count} images, cosine similarity)` }),
    figures.length ? el("div", { class: "split" }, ...figures) : el("p", { class: "muted", text: "The index is empty." }));
}

const TASKS = { classify: showClassify, enhance: showEnhance, compress: showCompress, embed: showEmbed };

// ---------- runs ----------

async function loadRuns() {
  const list = $("#runs");
  list.replaceChildren(el("li", { class: "muted", text: "Loading…" }));
  let runs;
  try {
    runs = await (await api("/v1/runs")).json();
  } catch (e) {
    list.replaceChildren();
    return showMessage(`Could not list the runs: ${e.message}`);
  }
  if (!runs.length) return list.replaceChildren(el("li", { class: "muted", text: "No runs in the runs folder." }));
  list.replaceChildren(...runs.map((r) => {
    const main = Object.entries(r.metrics || {}).slice(0, 2).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(" · ");
    return el("li", {}, el("button", { type: "button", class: "run-item", "data-id": r.id, onclick: () => showRun(r) },
      el("span", { class: "run-id", text: r.id }),
      el("span", { class: "muted", text: `${new Date(r.modified * 1000).toLocaleString()}${main ? " · " + main : ""}` })));
  }));
}

async function showRun(run) {
  document.querySelectorAll(".run-item").forEach((b) => b.setAttribute("aria-current", String(b.dataset.id === run.id)));
  const box = $("#run-detail");
  box.replaceChildren(el("h2", { text: run.id }), el("p", { class: "muted", text: "Loading…" }));
  const base = `/v1/runs/${encodeURIComponent(run.task)}/${encodeURIComponent(run.name)}`;
  const parts = [el("h2", { text: run.id })];
  if (Object.keys(run.metrics || {}).length) {
    parts.push(statsList(Object.entries(run.metrics).map(([k, v]) => [k, fmt(v)])));
  }
  try {
    if (run.has_results !== false) {
      const rows = await (await api(`${base}/results`)).json();
      parts.push(el("h3", { text: "Curves" }), el("div", { class: "charts" }, chartsFor(rows)));
    }
    const plots = await Promise.all((run.plots || []).map(async (p) => {
      const blob = await (await api(`${base}/plots/${encodeURIComponent(p)}`)).blob();  // with the key
      return el("figure", { class: "plot" }, el("img", { src: URL.createObjectURL(blob), alt: `${p.replace(/\.png$/i, "").replace(/_/g, " ")} plot of run ${run.id}` }),
        el("figcaption", { text: p }));
    }));
    if (plots.length) parts.push(el("h3", { text: "Plots" }), el("div", { class: "plots" }, plots));
  } catch (e) {
    showMessage(`Could not load run ${run.id}: ${e.message}`);
  }
  box.querySelectorAll("img").forEach((i) => URL.revokeObjectURL(i.src));
  box.replaceChildren(...parts);
}

function chartsFor(rows) {
  const cols = rows.length ? Object.keys(rows[0]) : [];
  const xKey = cols.includes("epoch") ? "epoch" : null;
  const losses = cols.filter((c) => /loss/i.test(c));
  const vals = cols.filter((c) => c.startsWith("val/") && !/loss/i.test(c));
  const groups = [];
  if (losses.length) groups.push(["Loss", losses]);
  for (const c of vals) groups.push([c, [c]]);
  if (!groups.length) return [el("p", { class: "muted", text: "results.csv has no loss or val columns." })];
  return groups.map(([title, keys]) => {
    const canvas = el("canvas", { class: "chart", width: "360", height: "220", role: "img",
      "aria-label": `${title} against epoch: ${keys.map((k) => `${k} last ${fmt(lastValue(rows, k))}`).join(", ")}` });
    requestAnimationFrame(() => drawChart(canvas, rows, xKey, keys, title));
    return el("figure", { class: "chart-box" }, canvas);
  });
}

function lastValue(rows, k) {
  for (let i = rows.length - 1; i >= 0; i--) if (typeof rows[i][k] === "number") return rows[i][k];
  return null;
}

const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2"];

function drawChart(canvas, rows, xKey, keys, title) {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth || 360, H = canvas.clientHeight || 220;
  canvas.width = W * dpr; canvas.height = H * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  const pad = { l: 52, r: 12, t: 26, b: 30 };
  const series = keys.map((k) => rows.map((r, i) => [xKey ? r[xKey] : i + 1, r[k]]).filter(([x, y]) => typeof x === "number" && typeof y === "number"));
  const pts = series.flat();
  g.fillStyle = "#111"; g.font = "600 13px system-ui, sans-serif";
  g.fillText(title, pad.l, 16);
  if (!pts.length) { g.fillStyle = "#666"; g.fillText("no values", pad.l, H / 2); return; }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (W - pad.l - pad.r);
  const Y = (y) => H - pad.b - ((y - y0) / (y1 - y0)) * (H - pad.t - pad.b);
  g.strokeStyle = "#ddd"; g.fillStyle = "#555"; g.font = "11px system-ui, sans-serif"; g.lineWidth = 1;
  const dec = Math.max(0, Math.min(6, 1 - Math.floor(Math.log10((y1 - y0) / 4))));  // distinct tick labels
  for (let i = 0; i <= 4; i++) {  // horizontal grid and y ticks
    const y = y0 + ((y1 - y0) * i) / 4;
    g.beginPath(); g.moveTo(pad.l, Y(y)); g.lineTo(W - pad.r, Y(y)); g.stroke();
    g.textAlign = "right"; g.fillText(y.toFixed(dec), pad.l - 6, Y(y) + 4);
  }
  g.textAlign = "center";
  const xs = [...new Set(pts.map((p) => p[0]))].sort((a, b) => a - b);
  const step = Math.max(1, Math.ceil(xs.length / 8));
  xs.filter((_, i) => i % step === 0).forEach((x) => g.fillText(fmt(x, 3), X(x), H - pad.b + 16));
  g.fillText(xKey || "row", (pad.l + W - pad.r) / 2, H - 2);
  series.forEach((s, i) => {
    g.strokeStyle = g.fillStyle = COLORS[i % COLORS.length]; g.lineWidth = 2;
    g.beginPath();
    s.forEach(([x, y], j) => (j ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
    g.stroke();
    s.forEach(([x, y]) => { g.beginPath(); g.arc(X(x), Y(y), 3, 0, 2 * Math.PI); g.fill(); });
    if (keys.length > 1) {  // legend, top right
      g.textAlign = "right"; g.font = "11px system-ui, sans-serif";
      g.fillText(keys[i], W - pad.r, 14 + 13 * i);
    }
  });
}

// ---------- start ----------

function init() {
  const key = $("#api-key");
  key.value = apiKey();
  key.addEventListener("change", () => {
    try { key.value ? localStorage.setItem(KEY_STORE, key.value) : localStorage.removeItem(KEY_STORE); } catch { /* private mode */ }
    clearMessage();
    loadModels();
  });
  $("#message-close").addEventListener("click", clearMessage);
  $("#runs-refresh").addEventListener("click", loadRuns);
  initInput();
  initTabs();
  if (window.initReview) window.initReview();  // review.js: shows its tab when the server reviews a folder
  loadHealth();
  loadModels();
}

document.addEventListener("DOMContentLoaded", init);
