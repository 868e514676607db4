// Hand-written SVG charts for the owner's dashboard: a line chart, (stacked) bars and a scatter map.
// Each returns a <figure> holding an <svg role="img"> with <title> and <desc>, a text summary in
// its <figcaption>, and (where asked) a data table in a <details>. Only attributes are set (a CSP
// without inline styles applies); the SVG scales to its container through its viewBox.

const SVG = "http://www.w3.org/2000/svg";
let uid = 0;

// Categorical colours: Paul Tol's "muted" scheme (9 colours, made to stay distinct under the
// common colour-vision deficiencies), darkest first so that the few-series charts (lines, bars)
// get the strongest ones, with black as a tenth. Every pair differs by at least 10 CIEDE2000
// units in normal vision and in simulated protanopia, deuteranopia and tritanopia
// (tests/test_web_palette.py). The pale ones (cyan, sand) are below 3:1 against white, so every
// mark is drawn with a dark outline (MARK_STROKE). Beyond ten categories the colours repeat and
// the pool map tells the next ten apart by shape: squares instead of circles (`marker`).
export const PALETTE = [
  "#332288", "#117733", "#882255", "#cc6677", "#aa4499",
  "#999933", "#44aa99", "#88ccee", "#ddcc77", "#000000",
];
export const MARK_STROKE = "#1f2733";
// Points and bars with no category (no prediction yet): Tol's pale grey, outlined like the rest.
export const NO_CATEGORY = "#dddddd";

/** The colour of category `i`. */
export function colour(i) {
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

/** The marker shape of category `i`: circles for the first ten, then squares, then diamonds. */
export function marker(i) {
  return ["circle", "square", "diamond"][Math.floor(Math.max(0, i) / PALETTE.length) % 3];
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function html(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Round "nice" tick values covering [lo, hi]. */
export function ticks(lo, hi, count = 5) {
  return niceScale(lo, hi, count).ticks;
}

/** A "nice" axis for [lo, hi]: `{lo, hi, step, ticks}` whose ends are ticks and cover the data
 *  (so no bar or point sits above the top tick). `integer`: whole-number steps (counts). */
export function niceScale(lo, hi, count = 5, integer = false) {
  if (!(hi > lo)) return { lo, hi: lo + 1, step: 1, ticks: [lo, lo + 1] };
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const nice = integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
  let step = nice.map((m) => m * mag).find((st) => raw <= st * (1 + 1e-9)) || 10 * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  const out = [];
  for (let v = first; v <= last + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return { lo: out[0], hi: out[out.length - 1], step, ticks: out };
}

/** The drawing width in SVG units: the container's CSS width (so text keeps its size), clamped. */
function size(width, most = 640) {
  return Math.round(Math.max(300, Math.min(most, Number(width) || 560)));
}

function fmt(v) {
  if (!Number.isFinite(v)) return "";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
  return Number.isInteger(v) ? String(v) : String(Number(v.toFixed(2)));
}

function frame(title, desc, width, height) {
  const id = `chart-${++uid}`;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": `${id}-t ${id}-d`,
    class: "chart",
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.append(s("title", { id: `${id}-t` }, title), s("desc", { id: `${id}-d` }, desc));
  return svg;
}

function axes(svg, box, xTicks, yTicks, xLabel, yLabel, xScale, yScale) {
  const g = s("g", { class: "axis" });
  for (const t of yTicks) {
    const y = yScale(t);
    g.append(s("line", { x1: box.l, x2: box.r, y1: y, y2: y, class: "grid" }));
    g.append(s("text", { x: box.l - 6, y: y + 4, "text-anchor": "end" }, fmt(t)));
  }
  for (const t of xTicks) {
    const x = xScale(t.value ?? t);
    g.append(s("text", { x, y: box.b + 16, "text-anchor": "middle" }, t.label ?? fmt(t)));
  }
  g.append(s("line", { x1: box.l, x2: box.r, y1: box.b, y2: box.b, class: "baseline" }));
  g.append(s("line", { x1: box.l, x2: box.l, y1: box.t, y2: box.b, class: "baseline" }));
  if (xLabel) g.append(s("text", { x: (box.l + box.r) / 2, y: box.b + 34, "text-anchor": "middle", class: "axis-label" }, xLabel));
  if (yLabel) {
    g.append(
      s("text", { x: -(box.t + box.b) / 2, y: 14, transform: "rotate(-90)", "text-anchor": "middle", class: "axis-label" }, yLabel),
    );
  }
  svg.append(g);
}

// A legend entry's width in SVG units: the phone stylesheet sets 14px text (about 8 units a
// character in a viewBox as wide as the screen), so entries are spaced for that.
const LEGEND_CHAR = 8;

/** Legend rows for `names` from x = left, wrapping before `right`: [{x, y}] and the last row's y. */
function legendLayout(names, left, right, first = 12, gap = 30) {
  let x = left, y = first;
  const at = names.map((name) => {
    const needs = gap + name.length * LEGEND_CHAR;
    if (x > left && x + needs > right) { x = left; y += 18; }
    const spot = { x, y };
    x += needs;
    return spot;
  });
  return { at, bottom: y };
}

function figure(svg, summary, table) {
  const fig = html("figure", { class: "chart-figure" }, svg, html("figcaption", { class: "chart-summary" }, summary));
  if (table) fig.append(table);
  return fig;
}

/** A data table inside a <details> (the charts' text alternative). rows: arrays of cells. */
export function dataTable(caption, headers, rows) {
  const table = html("table", { class: "data" }, html("caption", {}, caption));
  const head = html("tr", {});
  for (const hd of headers) head.append(html("th", { scope: "col" }, hd));
  table.append(html("thead", {}, head));
  const body = html("tbody", {});
  for (const row of rows) {
    const tr = html("tr", {});
    row.forEach((cell, i) => tr.append(i === 0 ? html("th", { scope: "row" }, cell) : html("td", {}, cell)));
    body.append(tr);
  }
  table.append(body);
  return html("details", { class: "chart-data" }, html("summary", {}, "Show the numbers"), html("div", { class: "table-scroll" }, table));
}

/** Line chart. series: [{name, points: [{x, y}]}]; yDomain: [lo, hi] or null (from the data). */
export function lineChart({ title, desc, summary, series, xLabel, yLabel, yDomain, table, width }) {
  const W = size(width), H = Math.max(220, Math.round(W * 0.55));
  const box = { l: 52, r: W - 16, t: 14, b: H - 46 };
  const svg = frame(title, desc, W, H);
  const named = series.filter((se) => se.points.length);
  const legendAt = legendLayout(named.map((se) => se.name), box.l + 8, box.r, 10, 40);
  if (series.length > 1) box.t = legendAt.bottom + 18; // the plot starts below the legend's rows
  const all = series.flatMap((se) => se.points);
  const xs = all.map((p) => p.x), ys = all.map((p) => p.y);
  let x0 = Math.min(0, ...xs), x1 = Math.max(1, ...xs);
  let [y0, y1] = yDomain || [Math.min(...ys), Math.max(...ys)];
  if (!(y1 > y0)) { y0 -= 0.5; y1 += 0.5; }
  if (!yDomain) ({ lo: y0, hi: y1 } = niceScale(y0, y1, 5));
  ({ lo: x0, hi: x1 } = niceScale(x0, x1, W < 420 ? 4 : 6));
  const xs_ = (v) => box.l + ((v - x0) / (x1 - x0)) * (box.r - box.l);
  const ys_ = (v) => box.b - ((v - y0) / (y1 - y0)) * (box.b - box.t);
  axes(svg, box, ticks(x0, x1, W < 420 ? 4 : 6), ticks(y0, y1, 5), xLabel, yLabel, xs_, ys_);
  // The first series (the model) is drawn last, on top, with filled points; the others' points
  // are hollow rings: where they share a point with it (the first round), it keeps its colour.
  const drawn = [];
  series.forEach((se, i) => {
    const pts = [...se.points].sort((a, b) => a.x - b.x);
    if (!pts.length) return;
    const dash = se.dashed ? "6 4" : null;
    const g = s("g", { class: "series", "data-series": se.name });
    g.append(s("polyline", { points: pts.map((p) => `${xs_(p.x)},${ys_(p.y)}`).join(" "), fill: "none", stroke: colour(i), "stroke-width": se.dashed ? 2 : 2.5, "stroke-dasharray": dash }));
    if (!se.dashed) {
      for (const p of pts) {
        const mark = i === 0
          ? { r: 4.5, fill: colour(i), stroke: "#ffffff", "stroke-width": 1 }
          : { r: 3.5, fill: "#ffffff", stroke: colour(i), "stroke-width": 2 };
        g.append(s("circle", { cx: xs_(p.x), cy: ys_(p.y), ...mark }, s("title", {}, `${se.name}: ${fmt(p.y)} at ${fmt(p.x)} labels`)));
      }
    }
    drawn.unshift(g);
    if (series.length > 1) {
      const legend = s("g", { class: "legend" });
      const { x: lx, y: ly } = legendAt.at[named.indexOf(se)];
      legend.append(s("line", { x1: lx, x2: lx + 18, y1: ly, y2: ly, stroke: colour(i), "stroke-width": 2.5, "stroke-dasharray": dash }));
      legend.append(s("text", { x: lx + 22, y: ly + 4 }, se.name));
      svg.append(legend);
    }
  });
  for (const g of drawn) svg.append(g);
  return figure(svg, summary, table);
}

/** Vertical bars, stacked by series. categories: [label]; series: [{name, values: [n], colour?}]. */
export function barChart({ title, desc, summary, categories, series, xLabel, yLabel, table, width }) {
  const W = size(width), H = Math.max(240, Math.round(W * 0.55));
  const longest = Math.max(1, ...categories.map((c) => String(c).length));
  const rotate = longest * 7.5 > (W - 68) / Math.max(1, categories.length);
  const box = { l: 52, r: W - 16, t: 30, b: H - (rotate ? 70 : 46) };
  const svg = frame(title, desc, W, H);
  const legendAt = legendLayout(series.map((se) => se.name), box.l, box.r, 6);
  if (series.length > 1) box.t = legendAt.bottom + 24;
  const totals = categories.map((_, j) => series.reduce((acc, se) => acc + (se.values[j] || 0), 0));
  const top = Math.max(1, ...totals);
  const { hi: yMax, ticks: yTicks } = niceScale(0, top, 5, true); // whole counts; the top tick covers the tallest bar
  const band = (box.r - box.l) / Math.max(1, categories.length);
  const ys_ = (v) => box.b - (v / yMax) * (box.b - box.t);
  const xTicks = rotate ? [] : categories.map((c, j) => ({ value: j, label: String(c) }));
  axes(svg, box, xTicks, yTicks, rotate ? null : xLabel, yLabel, (j) => box.l + band * (j + 0.5), ys_);
  if (rotate) {
    categories.forEach((c, j) => {
      const x = box.l + band * (j + 0.5);
      const label = String(c).length > 14 ? `${String(c).slice(0, 13)}…` : String(c);
      svg.append(s("text", { x, y: box.b + 12, transform: `rotate(-40 ${x} ${box.b + 12})`, "text-anchor": "end", class: "tick" }, label));
    });
  }
  const legend = s("g", { class: "legend" });
  series.forEach((se, i) => {
    const { x: lx, y: ly } = legendAt.at[i];
    legend.append(s("rect", { x: lx, y: ly, width: 12, height: 12, fill: se.colour || colour(i), stroke: MARK_STROKE, "stroke-width": 0.75 }));
    legend.append(s("text", { x: lx + 16, y: ly + 10 }, se.name));
  });
  if (series.length > 1) svg.append(legend);
  const bars = s("g", { class: "bars" });
  categories.forEach((c, j) => {
    let acc = 0;
    series.forEach((se, i) => {
      const v = se.values[j] || 0;
      if (!v) return;
      const y = ys_(acc + v);
      const h = ys_(acc) - y;
      const w = Math.max(2, band * 0.7);
      bars.append(
        s("rect", { x: box.l + band * j + (band - w) / 2, y, width: w, height: Math.max(h, 0.5), fill: se.colour || colour(i), stroke: MARK_STROKE, "stroke-width": 0.75 },
          s("title", {}, `${c}: ${v} ${se.name}`)),
      );
      acc += v;
    });
  });
  svg.append(bars);
  return figure(svg, summary, table);
}

/** Scatter map. points: [{x, y, group (index), ring (bool: outlined), tip}];
 *  groups: [{name, colour, shape?}] (shape: circle, square or diamond; default circle). */
export function scatterPlot({ title, desc, summary, points, groups, table, width }) {
  const W = size(width, 720), H = Math.round(W * 0.7);
  const box = { l: 16, r: W - 16, t: 16, b: H - 16 };
  const svg = frame(title, desc, W, H);
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  const r = points.length > 1500 ? 2.5 : points.length > 400 ? 3.5 : 5;
  // The data sit inside the frame by a point's reach (its radius and ring) and a little air,
  // so that the outermost points are drawn whole, inside the plot area.
  const pad = r + 4;
  const inner = { l: box.l + pad, r: box.r - pad, t: box.t + pad, b: box.b - pad };
  const xs_ = (v) => inner.l + ((v - x0) / (x1 - x0)) * (inner.r - inner.l);
  const ys_ = (v) => inner.b - ((v - y0) / (y1 - y0)) * (inner.b - inner.t);
  svg.append(s("rect", { x: box.l, y: box.t, width: box.r - box.l, height: box.b - box.t, class: "plot-area" }));
  const g = s("g", { class: "points" });
  for (const p of points) {
    const grp = groups[p.group];
    const c = shape(grp?.shape, xs_(p.x), ys_(p.y), p.ring ? r + 1.5 : r, { // labelled: bigger, ringed
      fill: grp?.colour || NO_CATEGORY, "fill-opacity": 0.9,
      stroke: p.ring ? "#000000" : MARK_STROKE, "stroke-width": p.ring ? 1.75 : 0.6, class: p.ring ? "labelled" : null,
    });
    if (p.tip) c.append(s("title", {}, p.tip));
    g.append(c);
  }
  svg.append(g);
  const fig = figure(svg, summary, table);
  const legend = html("ul", { class: "legend-list", "aria-label": "Colours of the predicted labels" });
  for (const grp of groups) {
    const swatch = s("svg", { width: 14, height: 14, viewBox: "0 0 14 14", "aria-hidden": "true", focusable: "false" },
      shape(grp.shape, 7, 7, 5.5, { fill: grp.colour, stroke: MARK_STROKE, "stroke-width": 0.75 }));
    legend.append(html("li", {}, swatch, ` ${grp.name}`));
  }
  fig.insertBefore(legend, fig.querySelector("figcaption"));
  return fig;
}

/** A marker of `kind` (circle, square, diamond) centred on (x, y) with reach r. */
function shape(kind, x, y, r, attrs) {
  const cx = Number(x.toFixed(1)), cy = Number(y.toFixed(1));
  if (kind === "square") {
    const a = r * 0.9;
    return s("rect", { x: (cx - a).toFixed(1), y: (cy - a).toFixed(1), width: (2 * a).toFixed(1), height: (2 * a).toFixed(1), ...attrs });
  }
  if (kind === "diamond") {
    const pts = [[cx, cy - r * 1.2], [cx + r * 1.2, cy], [cx, cy + r * 1.2], [cx - r * 1.2, cy]];
    return s("polygon", { points: pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" "), ...attrs });
  }
  return s("circle", { cx, cy, r, ...attrs });
}
