// The page: decode the embedded data, colour the text by a unit, hover predictions, rank units by a feature.
// The heat map and the generator live in panels.js; both share the state object `view`.
"use strict";

const view = { layer: 0, qname: "h", unit: 0, ranking: null, spans: [], hover: -1 };

// -- colours: a code q (0..255) on the quantity's fixed range; diverging for signed ranges, sequential for gates
const DIVERGING = [[33, 102, 172], [247, 247, 247], [178, 24, 43]];
const SEQUENTIAL = [[247, 247, 247], [35, 139, 69]];
function rgbOf(q, kind) {
  const t = q / 255, mix = (a, b, s) => a.map((v, i) => Math.round(v + (b[i] - v) * s));
  if (kind === "gate") return mix(SEQUENTIAL[0], SEQUENTIAL[1], t);
  return t < 0.5 ? mix(DIVERGING[0], DIVERGING[1], t / 0.5) : mix(DIVERGING[1], DIVERGING[2], (t - 0.5) / 0.5);
}
const LUT = {};
for (const kind of ["gate", "tanh", "free"]) {
  LUT[kind] = [];
  for (let q = 0; q < 256; q++) LUT[kind].push(rgbOf(q, kind));
}
const css = (rgb) => `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
const inkOf = (rgb) => (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 120 ? "#fff" : "#000");
function codeOf(v, Q) {  // the same rounding as rnnkit.views.traces.quantise
  const c = Math.min(Math.max(v, Q.lo), Q.hi);
  return Math.round((c - Q.lo) * (255 / (Q.hi - Q.lo)));
}
const valueOf = (q, Q) => Q.lo + q * ((Q.hi - Q.lo) / 255);
const shown = (c) => ({ "\n": "\u21B5", " ": "\u2423", "\t": "\u21E5" }[c] || c);
const $ = (id) => document.getElementById(id);

// -- data ---------------------------------------------------------------------------------------------
async function decode() {
  const data = JSON.parse($("rnnkit-data").textContent);
  const raw = atob(data.blob), bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const inflated = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  const buf = await new Response(inflated).arrayBuffer();
  const TYPES = { uint8: Uint8Array, uint16: Uint16Array, float32: Float32Array, float64: Float64Array };
  data.array = (name) => {
    const s = data.sections[name];
    return new TYPES[s.dtype](buf, s.offset, s.shape.reduce((a, b) => a * b, 1));
  };
  data.chars = Array.from(data.text);  // code points, as Python indexes them
  data.T = data.chars.length;
  data.vocabChars = Array.from(data.vocab);
  for (const L of data.layers) for (const Q of L.quantities) Q.codes = data.array(Q.key);  // (H, T)
  return data;
}

const D = () => view.data;
const quantity = (layer = view.layer, qname = view.qname) =>
  D().layers[layer].quantities.find((Q) => Q.name === qname);

// -- text ---------------------------------------------------------------------------------------------
function buildText() {
  const box = $("text"), frag = document.createDocumentFragment();
  D().chars.forEach((c, i) => {
    const s = document.createElement("span");
    s.dataset.i = i;
    if (c === "\n") { s.className = "nl"; s.textContent = "\n"; } else s.textContent = c;
    frag.appendChild(s);
    view.spans.push(s);
  });
  box.appendChild(frag);
  box.addEventListener("mouseover", (e) => {
    const i = e.target.dataset && e.target.dataset.i;
    if (i === undefined) return;
    view.hover = +i;
    showTip(e, tipForText(+i));
    if (window.RnnkitPanels) RnnkitPanels.follow(+i);
  });
  box.addEventListener("mousemove", (e) => moveTip(e));
  box.addEventListener("mouseleave", () => { $("tip").hidden = true; view.hover = -1; });
  box.addEventListener("scroll", () => window.RnnkitPanels && RnnkitPanels.scrolled());
}

function colourText() {
  const Q = quantity(), T = D().T, codes = Q.codes, base = view.unit * T, lut = LUT[Q.kind];
  for (let t = 0; t < T; t++) {
    const rgb = lut[codes[base + t]], s = view.spans[t];
    s.style.backgroundColor = css(rgb);
    s.style.color = inkOf(rgb);
  }
  if (window.RnnkitPanels) RnnkitPanels.recolour();
}

// -- tooltip ------------------------------------------------------------------------------------------
function topTable(ids, probs) {
  return "<table>" + ids.map((id, k) => {
    const p = probs[k];
    return `<tr><td>${escapeHtml(shown(D().vocabChars[id]))}</td><td>${p.toFixed(3)}</td>` +
      `<td><span class="pbar" style="width:${Math.round(p * 80)}px"></span></td></tr>`;
  }).join("") + "</table>";
}
function tipForText(i) {
  const Q = quantity(), T = D().T, k = D().sections["top.ids"].shape[1];
  const ids = Array.from(D().topIds.subarray(i * k, (i + 1) * k));
  const probs = Array.from(D().topP.subarray(i * k, (i + 1) * k), (v) => v / 65535);
  const v = valueOf(Q.codes[view.unit * T + i], Q);
  return `char ${i} <b>${escapeHtml(shown(D().chars[i]))}</b><br>l${view.layer}.${Q.name}[${view.unit}] = ` +
    `${v.toFixed(3)}<br>next character:` + topTable(ids, probs);
}
function escapeHtml(s) {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}
function showTip(e, html) { const tip = $("tip"); tip.innerHTML = html; tip.hidden = false; moveTip(e); }
function moveTip(e) {
  const tip = $("tip");
  tip.style.left = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 4) + "px";
  tip.style.top = Math.min(e.clientY + 14, window.innerHeight - tip.offsetHeight - 4) + "px";
}

// -- controls -----------------------------------------------------------------------------------------
function fillSelect(sel, items) {
  sel.innerHTML = "";
  for (const [value, label] of items) sel.add(new Option(label, value));
}
function select(layer, qname, unit) {
  view.layer = layer;
  const names = D().layers[layer].quantities.map((Q) => Q.name);
  view.qname = names.includes(qname) ? qname : names[0];
  const Q = quantity();
  view.unit = Math.max(0, Math.min(unit, Q.units - 1));
  $("layer").value = String(layer);
  fillSelect($("quantity"), D().layers[layer].quantities.map((Q) => [Q.name, QUANTITY_NAMES[Q.name] || Q.name]));
  $("quantity").value = view.qname;
  $("unit").max = Q.units - 1;
  $("unit").value = view.unit;
  drawLegend(Q);
  colourText();
  document.querySelectorAll("#ranking li").forEach((li) => li.classList.toggle("on",
    +li.dataset.layer === view.layer && li.dataset.q === view.qname && +li.dataset.unit === view.unit));
}
const QUANTITY_NAMES = { h: "h (hidden state)", c: "c (LSTM cell)", i: "i (input gate)", f: "f (forget gate)",
  g: "g (candidate)", o: "o (output gate)", r: "r (reset gate)", z: "z (update gate)", n: "n (candidate)",
  y: "y (Jordan output)" };
function drawLegend(Q) {
  const stops = [0, 64, 128, 191, 255].map((q) => `${css(LUT[Q.kind][q])} ${(q / 255 * 100).toFixed(0)}%`);
  $("legend-bar").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  $("legend-lo").textContent = Q.lo;
  $("legend-hi").textContent = Q.hi;
  $("legend-note").textContent = Q.kind === "free" ? `(${Q.name} is unbounded: fixed range [${Q.lo}, ${Q.hi}] ` +
    "for this page, values beyond it clipped)" : "";
}

// -- ranking ------------------------------------------------------------------------------------------
const WORD = /[\p{L}\p{N}]/u;
function featureValues(name) {  // the definitions of rnnkit.views.traces.feature, plus regex and spans
  const chars = D().chars, T = chars.length, f = new Float64Array(T);
  if (name === "quotes") {
    let inside = 0;
    chars.forEach((c, t) => { inside ^= c === '"'; f[t] = inside; });
  } else if (name === "brackets") {
    let depth = 0;
    chars.forEach((c, t) => {
      depth = Math.max(0, depth + "([{".includes(c) - ")]}".includes(c));
      f[t] = depth > 0;
    });
  } else if (name === "column") {
    let col = 0;
    chars.forEach((c, t) => { col = c === "\n" ? 0 : col + 1; f[t] = col; });
  } else if (name === "word") {
    let prev = false;
    chars.forEach((c, t) => { const cur = WORD.test(c); f[t] = cur && !prev; prev = cur; });
  } else if (name === "regex") {
    let re;
    if (!$("regex").value) throw new Error("type a regular expression first");
    try { re = new RegExp($("regex").value, "gu"); } catch (err) {
      throw new Error("invalid regular expression: " + err.message);
    }
    const text = D().text, cp = new Int32Array(text.length + 1);  // UTF-16 offset -> code-point index
    let t = 0;
    for (let u = 0; u < text.length; t++) {
      const w = text.codePointAt(u) > 0xffff ? 2 : 1;
      cp[u] = t; cp[u + w - 1] = t; u += w;
    }
    cp[text.length] = t;
    for (const m of D().text.matchAll(re)) for (let t = cp[m.index]; t < cp[m.index + m[0].length]; t++) f[t] = 1;
  } else if (name === "selection") {
    if (!view.selections.length) throw new Error("select some text in the text panel and press 'add selected text'");
    for (const [a, b] of view.selections) for (let t = a; t <= b; t++) f[t] = 1;
  }
  return f;
}
function correlations(Q, f) {  // Pearson r of each unit's codes with f (a linear map of codes keeps r)
  const T = D().T, H = Q.units, r = new Float64Array(H);
  let fm = 0;
  for (let t = 0; t < T; t++) fm += f[t];
  fm /= T;
  const fc = new Float64Array(T);
  let sff = 0;
  for (let t = 0; t < T; t++) { fc[t] = f[t] - fm; sff += fc[t] * fc[t]; }
  for (let u = 0; u < H; u++) {
    const row = Q.codes.subarray(u * T, (u + 1) * T);
    let s = 0, ss = 0, sf = 0;
    for (let t = 0; t < T; t++) { const v = row[t]; s += v; ss += v * v; sf += v * fc[t]; }
    const den = Math.sqrt(Math.max(ss - s * s / T, 0) * sff);
    r[u] = den > 1e-9 ? sf / den : 0;
  }
  return r;
}
function rank(name = $("feature").value, all = $("rank-all").checked) {
  const f = featureValues(name), rows = [];
  D().layers.forEach((L, k) => L.quantities.forEach((Q) => {
    if (!all && (k !== view.layer || Q.name !== view.qname)) return;
    correlations(Q, f).forEach((r, u) => rows.push({ layer: k, q: Q.name, unit: u, r }));
  }));
  rows.sort((a, b) => Math.abs(b.r) - Math.abs(a.r) || a.unit - b.unit);
  view.ranking = { feature: name, rows, byUnit: {} };
  for (const row of rows) view.ranking.byUnit[`${row.layer}.${row.q}.${row.unit}`] = row.r;
  const ol = $("ranking");
  ol.innerHTML = "";
  for (const row of rows.slice(0, 50)) {
    const li = document.createElement("li");
    Object.assign(li.dataset, { layer: row.layer, q: row.q, unit: row.unit });
    li.textContent = `l${row.layer}.${row.q}[${row.unit}]  r = ${row.r >= 0 ? "+" : ""}${row.r.toFixed(3)}`;
    li.addEventListener("click", () => select(row.layer, row.q, row.unit));
    ol.appendChild(li);
  }
  if (window.RnnkitPanels) RnnkitPanels.redrawHeat();
  return rows;
}
function addSelection() {
  const sel = window.getSelection();
  if (!sel.rangeCount || sel.isCollapsed) return;
  const r = sel.getRangeAt(0), at = (node) => (node.nodeType === 3 ? node.parentElement : node).closest("[data-i]");
  const a = at(r.startContainer), b = at(r.endContainer);
  if (!a || !b || !$("text").contains(a)) return;
  view.selections.push([Math.min(+a.dataset.i, +b.dataset.i), Math.max(+a.dataset.i, +b.dataset.i)]);
  $("span-count").textContent = `${view.selections.length} span(s)`;
  $("feature").value = "selection";
}

function safely(fn) {  // a user mistake (bad regex, no selection) is shown, not thrown into the console
  return (...args) => {
    try { return fn(...args); } catch (err) { $("ranking").innerHTML = `<li class="note">${escapeHtml(err.message)}</li>`; }
  };
}

async function main() {
  view.data = await decode();
  view.selections = [];
  D().topIds = D().array("top.ids");
  D().topP = D().array("top.p");
  const a = D().arch;
  $("model-info").textContent = `${a.cell}${a.cell === "gru" && !a.reset_after ? " (reset before)" : ""} ` +
    `${a.num_layers}\u00d7${a.hidden_size}, vocabulary ${D().vocabChars.length}, ${D().T.toLocaleString()} characters` +
    (D().step != null ? `, step ${D().step}` : "") + (D().val_loss != null ? `, validation loss ${(+D().val_loss).toFixed(3)}` : "");
  fillSelect($("layer"), D().layers.map((_, k) => [String(k), `${k}`]));
  buildText();
  $("layer").addEventListener("change", () => select(+$("layer").value, view.qname, view.unit));
  $("quantity").addEventListener("change", () => select(view.layer, $("quantity").value, view.unit));
  $("unit").addEventListener("change", () => select(view.layer, view.qname, +$("unit").value || 0));
  $("unit-prev").addEventListener("click", () => select(view.layer, view.qname, view.unit - 1));
  $("unit-next").addEventListener("click", () => select(view.layer, view.qname, view.unit + 1));
  $("rank").addEventListener("click", safely(() => rank()));
  $("use-selection").addEventListener("click", addSelection);
  $("clear-selection").addEventListener("click", () => { view.selections = []; $("span-count").textContent = ""; });
  $("footer").textContent = `Written by rnnkit text view. Activations are stored as 8-bit codes on the fixed ranges ` +
    `shown in the legend (largest rounding error on this page ${D().quant_max_error.toFixed(4)}); ` +
    `predictions as 16-bit probabilities; weights as ${D().sections["w.head.W"].dtype}.`;
  if (window.RnnkitPanels) RnnkitPanels.init();
  select(0, "h", 0);
}

window.rnnkitView = { view, rank, select, featureValues, correlations, rgbOf, codeOf, quantity };
window.rnnkitView.ready = main().then(() => true);
