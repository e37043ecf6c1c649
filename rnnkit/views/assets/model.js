// rnnkit's CharRNN in the browser, in float64: embedding -> recurrent layers -> dense logits -> softmax.
// The equations are those of rnnkit/nn/recurrent/reference.py (PyTorch layouts, x @ W_x with W_x (D, G*H),
// gates i f g o for LSTM, r z n for GRU in both reset forms, Elman tanh/relu, Jordan feeding back its output).
"use strict";

const RnnkitModel = (() => {
  const sigmoid = (a) => 0.5 * (1 + Math.tanh(0.5 * a));  // rnnkit.nn.activations.sigmoid's form

  // out = b + x @ W[:, c0:c1] for a row-major W with `cols` columns; x (rows,), out (c1 - c0,)
  function affine(x, W, cols, b, c0 = 0, c1 = cols) {
    const n = c1 - c0, out = new Float64Array(n);
    if (b) for (let j = 0; j < n; j++) out[j] = b[c0 + j];
    for (let i = 0; i < x.length; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = i * cols + c0;
      for (let j = 0; j < n; j++) out[j] += xi * W[row + j];
    }
    return out;
  }

  const OUT = { tanh: Math.tanh, sigmoid: sigmoid, identity: (a) => a, relu: (a) => (a > 0 ? a : 0) };

  class Model {
    // arch: {cell, num_layers, hidden_size, reset_after, nonlinearity, output_activation};
    // w(name) -> Float64Array of the parameter `name` (rnnkit's names: embed.W, rnn.l0.W_x, head.W ...)
    constructor(arch, w, vocabSize) {
      this.arch = arch;
      this.V = vocabSize;
      this.embed = w("embed.W");
      this.E = this.embed.length / this.V;
      this.layers = [];
      let D = this.E;
      for (let k = 0; k < arch.num_layers; k++) {
        const p = (n) => w(`rnn.l${k}.${n}`);
        const L = { D, W_x: p("W_x"), W_h: p("W_h"), b_x: p("b_x"), b_h: p("b_h") };
        L.GH = L.b_x.length;
        if (arch.cell === "jordan") {
          L.W_o = p("W_o"); L.b_o = p("b_o");
          L.H = L.GH; L.O = L.b_o.length;
        } else {
          L.H = arch.cell === "lstm" ? L.GH / 4 : arch.cell === "gru" ? L.GH / 3 : L.GH;
          L.O = L.H;
        }
        this.layers.push(L);
        D = L.O;
      }
      this.headW = w("head.W");
      this.headb = w("head.b");
    }

    // the zero state: per layer {h} ({h, c} for LSTM; Jordan's h holds its fed-back output y)
    initialState() {
      return this.layers.map((L) => {
        const s = { h: new Float64Array(L.O) };
        if (this.arch.cell === "lstm") s.c = new Float64Array(L.H);
        return s;
      });
    }

    // one layer, one step: returns [new state, quantities {name: Float64Array}]
    cellStep(L, x, s) {
      const H = L.H, cell = this.arch.cell;
      const ax = affine(x, L.W_x, L.GH, L.b_x);
      if (cell === "lstm") {
        const a = affine(s.h, L.W_h, L.GH, L.b_h);
        const q = { h: new Float64Array(H), c: new Float64Array(H), i: new Float64Array(H),
                    f: new Float64Array(H), g: new Float64Array(H), o: new Float64Array(H) };
        for (let j = 0; j < H; j++) {
          const i = sigmoid(ax[j] + a[j]), f = sigmoid(ax[H + j] + a[H + j]);
          const g = Math.tanh(ax[2 * H + j] + a[2 * H + j]), o = sigmoid(ax[3 * H + j] + a[3 * H + j]);
          const c = f * s.c[j] + i * g;
          q.i[j] = i; q.f[j] = f; q.g[j] = g; q.o[j] = o; q.c[j] = c; q.h[j] = o * Math.tanh(c);
        }
        return [{ h: q.h, c: q.c }, q];
      }
      if (cell === "gru") {
        const q = { h: new Float64Array(H), r: new Float64Array(H), z: new Float64Array(H), n: new Float64Array(H) };
        if (this.arch.reset_after) {  // n = tanh(a_xn + r * (h W_hn + b_hn))
          const ah = affine(s.h, L.W_h, L.GH, L.b_h);
          for (let j = 0; j < H; j++) {
            q.r[j] = sigmoid(ax[j] + ah[j]);
            q.z[j] = sigmoid(ax[H + j] + ah[H + j]);
            q.n[j] = Math.tanh(ax[2 * H + j] + q.r[j] * ah[2 * H + j]);
          }
        } else {  // n = tanh(a_xn + (r * h) W_hn + b_hn)
          const arz = affine(s.h, L.W_h, L.GH, L.b_h, 0, 2 * H);
          const rh = new Float64Array(H);
          for (let j = 0; j < H; j++) {
            q.r[j] = sigmoid(ax[j] + arz[j]);
            q.z[j] = sigmoid(ax[H + j] + arz[H + j]);
            rh[j] = q.r[j] * s.h[j];
          }
          const an = affine(rh, L.W_h, L.GH, L.b_h, 2 * H, 3 * H);
          for (let j = 0; j < H; j++) q.n[j] = Math.tanh(ax[2 * H + j] + an[j]);
        }
        for (let j = 0; j < H; j++) q.h[j] = (1 - q.z[j]) * q.n[j] + q.z[j] * s.h[j];
        return [{ h: q.h }, q];
      }
      const ah = affine(s.h, L.W_h, L.GH, L.b_h);
      if (cell === "elman") {
        const act = OUT[this.arch.nonlinearity], h = new Float64Array(H);
        for (let j = 0; j < H; j++) h[j] = act(ax[j] + ah[j]);
        return [{ h }, { h }];
      }
      // jordan: h = tanh(x W_x + b_x + y W_h + b_h), y' = out(h W_o + b_o)
      const h = new Float64Array(H);
      for (let j = 0; j < H; j++) h[j] = Math.tanh(ax[j] + ah[j]);
      const y = affine(h, L.W_o, L.O, L.b_o), out = OUT[this.arch.output_activation];
      for (let j = 0; j < L.O; j++) y[j] = out(y[j]);
      return [{ h: y }, { h, y }];
    }

    // read character `id`: {state, logits (V,), values: per layer {quantity: Float64Array}}
    step(id, state) {
      let x = this.embed.subarray(id * this.E, (id + 1) * this.E);
      const next = [], values = [];
      this.layers.forEach((L, k) => {
        const [s, q] = this.cellStep(L, x, state[k]);
        next.push(s); values.push(q);
        x = s.h;
      });
      return { state: next, logits: affine(x, this.headW, this.V, this.headb), values };
    }
  }

  function softmax(logits) {
    let m = -Infinity;
    for (const v of logits) if (v > m) m = v;
    const p = new Float64Array(logits.length);
    let s = 0;
    for (let j = 0; j < p.length; j++) { p[j] = Math.exp(logits[j] - m); s += p[j]; }
    for (let j = 0; j < p.length; j++) p[j] /= s;
    return p;
  }

  // the distribution sampled from, as rnnkit.tasks.text.generate: logits / temperature, only the top_k kept
  function samplingProbs(logits, temperature, topK) {
    const V = logits.length;
    if (temperature === 0) {
      let best = 0;
      for (let j = 1; j < V; j++) if (logits[j] > logits[best]) best = j;
      const p = new Float64Array(V); p[best] = 1; return p;
    }
    const z = logits.map((v) => v / temperature);
    if (topK && topK < V) {
      const kth = Array.from(z).sort((a, b) => b - a)[topK - 1];
      for (let j = 0; j < V; j++) if (z[j] < kth) z[j] = -Infinity;
    }
    return softmax(z);
  }

  function sample(p, u) {  // u uniform in [0, 1): the first index whose cumulative probability exceeds u
    let c = 0;
    for (let j = 0; j < p.length; j++) { c += p[j]; if (u < c) return j; }
    return p.length - 1;
  }

  function mulberry32(seed) {  // a small seeded generator: the same seed gives the same sample
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6D2B79F5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  return { Model, softmax, samplingProbs, sample, mulberry32 };
})();
