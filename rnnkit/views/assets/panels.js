// The units-by-time heat map (linked to the text panel) and the in-browser generator (RnnkitModel, model.js).
"use strict";

const RnnkitPanels = (() => {
  const CW = 3, MAX_HEIGHT = 320;  // heat-map pixels per character, largest height on screen
  let start = 0, order = [], pending = false, model = null;
  const gen = { state: null, logits: null, spans: [], rng: null, running: false, count: 0 };

  // -- heat map ---------------------------------------------------------------------------------------
  const rowPx = (H) => Math.max(1, Math.min(8, Math.floor(400 / H)));
  const ncols = () => Math.max(60, Math.floor(($("heat-wrap").clientWidth - 2) / CW));

  function unitOrder(Q) {
    const H = Q.units, T = D().T, idx = Array.from({ length: H }, (_, u) => u), mode = $("order").value;
    let key = null;
    if (mode === "rank" && view.ranking) {
      key = idx.map((u) => Math.abs(view.ranking.byUnit[`${view.layer}.${Q.name}.${u}`] ?? -1));
    } else if (mode === "variance") {
      key = idx.map((u) => {
        let s = 0, ss = 0;
        for (let t = 0, row = u * T; t < T; t++) { const v = Q.codes[row + t]; s += v; ss += v * v; }
        return ss / T - (s / T) ** 2;
      });
    }
    if (key) idx.sort((a, b) => key[b] - key[a] || a - b);
    return idx;
  }

  function redrawHeat() {
    const Q = quantity(), T = D().T, H = Q.units, rp = rowPx(H), lut = LUT[Q.kind];
    order = unitOrder(Q);
    start = Math.max(0, Math.min(start, T - 1));
    const n = Math.min(ncols(), T - start), canvas = $("heat");
    canvas.width = n * CW;
    canvas.height = H * rp;
    canvas.style.width = n * CW + "px";
    canvas.style.height = Math.min(H * rp, MAX_HEIGHT) + "px";  // many units: rows shrink on screen
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(n * CW, H * rp), px = img.data;
    order.forEach((u, r) => {
      for (let c = 0; c < n; c++) {
        const rgb = lut[Q.codes[u * T + start + c]];
        for (let dy = 0; dy < rp; dy++) {
          for (let dx = 0; dx < CW; dx++) {
            const o = (((r * rp + dy) * n * CW) + c * CW + dx) * 4;
            px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255;
          }
        }
      }
    });
    ctx.putImageData(img, 0, 0);
    ctx.strokeStyle = "#000";
    ctx.strokeRect(0.5, order.indexOf(view.unit) * rp - 0.5, n * CW - 1, rp + 1);
    if (view.hover >= start && view.hover < start + n) {
      ctx.fillStyle = "rgba(0,0,0,.6)";
      ctx.fillRect((view.hover - start) * CW, 0, CW, H * rp);
    }
    const sorted = $("order").value === "rank" && !view.ranking ? " (rank units first)" : "";
    $("heat-info").textContent = `characters ${start}\u2013${start + n - 1} of ${T}; ${H} units of ` +
      `l${view.layer}.${Q.name}${sorted}`;
  }
  function later() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; redrawHeat(); });
  }
  function follow(i) {  // the hovered character: keep it inside the heat map's window
    const n = ncols();
    if (i < start || i >= start + n) start = Math.max(0, i - (n >> 1));
    later();
  }
  function scrolled() {  // the heat map starts at the first character visible in the text panel
    const box = $("text").getBoundingClientRect();
    const el = document.elementFromPoint(box.left + 8, box.top + 8);
    if (el && el.dataset && el.dataset.i !== undefined) { start = +el.dataset.i; later(); }
  }
  function heatAt(e) {
    const rect = $("heat").getBoundingClientRect(), Q = quantity();
    const scale = $("heat").height / rect.height;
    const r = Math.floor((e.clientY - rect.top) * scale / rowPx(Q.units)), c = Math.floor((e.clientX - rect.left) / CW);
    return { unit: order[Math.max(0, Math.min(r, order.length - 1))], i: Math.min(start + Math.max(c, 0), D().T - 1) };
  }

  // -- generation -------------------------------------------------------------------------------------
  const weight = (name) => Float64Array.from(D().array("w." + name));
  const idOf = new Map();

  function addChar(id, values, p, dist, isPrime) {
    const s = document.createElement("span");
    const c = D().vocabChars[id];
    s.textContent = c;
    s.className = (c === "\n" ? "nl " : "") + (isPrime ? "prime" : "g");
    s.style.setProperty("--p", p == null ? 0 : p.toFixed(4));
    s.values = values; s.p = p; s.dist = dist;
    paint(s);
    $("gen-out").appendChild(s);
    gen.spans.push(s);
  }
  function paint(s) {
    const Q = quantity(), v = s.values[view.layer][Q.name][view.unit], rgb = LUT[Q.kind][codeOf(v, Q)];
    s.style.backgroundColor = css(rgb);
    s.style.color = inkOf(rgb);
  }
  function readText(text, shownFrom) {  // advance the state through text; show characters from shownFrom on
    Array.from(text).forEach((c, k) => {
      const r = model.step(idOf.get(c), gen.state);
      gen.state = r.state; gen.logits = r.logits;
      if (k >= shownFrom) addChar(idOf.get(c), r.values, null, null, true);
    });
  }
  function reset() {
    stop();
    $("gen-out").innerHTML = "";
    gen.spans = []; gen.count = 0;
    gen.rng = RnnkitModel.mulberry32(+$("seed").value || 0);
    gen.state = model.initialState();
    const chars = Array.from($("prime").value), prime = chars.filter((c) => idOf.has(c)).join("");
    const dropped = chars.length - Array.from(prime).length;
    const nl = idOf.has("\n");
    let warm = $("use-warmup").checked && D().warmup ? D().warmup + (nl ? "\n\n" : "") : "";
    const before = Array.from(warm).length;
    warm += prime;
    if (!warm) warm = nl ? "\n" : D().vocabChars[0];  // as rnnkit's generate: an empty prime starts a line
    readText(warm, prime ? before : Infinity);
    $("gen-info").textContent = dropped ? `${dropped} prime character(s) the model never saw were dropped` : "";
  }
  function step() {
    if (!gen.state) reset();
    const temperature = Math.max(0, +$("temperature").value || 0), k = Math.max(0, Math.floor(+$("topk").value || 0));
    const p = RnnkitModel.samplingProbs(gen.logits, temperature, k);
    const id = RnnkitModel.sample(p, gen.rng());
    const r = model.step(id, gen.state);
    addChar(id, r.values, p[id], p, false);
    gen.state = r.state; gen.logits = r.logits; gen.count++;
    $("gen-info").textContent = `${gen.count} character(s) sampled`;
  }
  function loop() {
    if (!gen.running) return;
    const t0 = performance.now();
    while (performance.now() - t0 < 15) step();
    if (gen.count >= 5000) stop(); else setTimeout(loop, 0);
  }
  function stop() { gen.running = false; $("gen-run").textContent = "run"; }
  function toggle() {
    if (gen.running) return stop();
    gen.running = true; $("gen-run").textContent = "pause"; loop();
  }
  function genTip(s) {
    const Q = quantity(), value = `l${view.layer}.${Q.name}[${view.unit}] = ` +
      s.values[view.layer][Q.name][view.unit].toFixed(3) + "<br>";
    if (!s.dist) return value + "prime character (read, not sampled)";
    const ids = Array.from(s.dist.keys()).sort((a, b) => s.dist[b] - s.dist[a]).slice(0, 5);
    return value + `sampled with probability ${s.p.toFixed(3)}<br>the distribution it was drawn from:` +
      topTable(ids, ids.map((i) => s.dist[i]));
  }

  function init() {
    D().vocabChars.forEach((c, i) => idOf.set(c, i));
    model = new RnnkitModel.Model(D().arch, weight, D().vocabChars.length);
    $("order").addEventListener("change", redrawHeat);
    window.addEventListener("resize", later);
    const heat = $("heat");
    heat.addEventListener("mousemove", (e) => {
      const { unit, i } = heatAt(e), Q = quantity();
      showTip(e, `unit ${unit}, char ${i} <b>${escapeHtml(shown(D().chars[i]))}</b><br>l${view.layer}.${Q.name}[${unit}] = ` +
        valueOf(Q.codes[unit * D().T + i], Q).toFixed(3));
    });
    heat.addEventListener("mouseleave", () => { $("tip").hidden = true; });
    heat.addEventListener("click", (e) => {
      const { unit, i } = heatAt(e), s = view.spans[i];
      select(view.layer, view.qname, unit);
      s.scrollIntoView({ block: "nearest" });
      s.classList.add("hl");
      setTimeout(() => s.classList.remove("hl"), 1500);
    });
    $("gen-reset").addEventListener("click", reset);
    $("gen-step").addEventListener("click", step);
    $("gen-run").addEventListener("click", toggle);
    const out = $("gen-out");
    out.addEventListener("mouseover", (e) => { if (e.target.values) showTip(e, genTip(e.target)); });
    out.addEventListener("mousemove", moveTip);
    out.addEventListener("mouseleave", () => { $("tip").hidden = true; });
  }

  // the distribution after each character of `text` read from the zero state (temperature 1): for tests
  function probsAfter(text) {
    let state = model.initialState();
    return Array.from(text).map((c) => {
      const r = model.step(idOf.get(c), state);
      state = r.state;
      return Array.from(RnnkitModel.softmax(r.logits));
    });
  }

  return { init, redrawHeat, follow, scrolled, later, probsAfter, reset, step,
           recolour: () => { redrawHeat(); gen.spans.forEach(paint); } };
})();
window.RnnkitPanels = RnnkitPanels;
