// The dashboard's light charts (dashboard/light_charts.py), drawn by this script in the page:
// - "clip_view": a clip's mel-spectrogram above its taggram on one time axis, from two PNGs,
//   with a hover that reads the tag's activation under the pointer;
// - "curves": a tag's ROC and precision-recall curves side by side, with their operating points
//   and a hover that reads the threshold along the curve.
//
// Why not plotly: mounting a plotly figure cost the browser 175-450 ms on every page switch or
// new clip (docs/benchmarks.md); these draw a few dozen elements. Every text comes from the run
// folder, so it is set as textContent, never as HTML.

const SVG = "http://www.w3.org/2000/svg";

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

const svg = (tag, attributes) => {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
};

// Ticks at a round step (1, 2 or 5 times a power of ten) that gives about `target` of them.
const ticks = (span, target) => {
  if (!(span > 0)) return [];
  const raw = span / target;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let t = 0; t <= span + 1e-9; t += step) out.push(Math.round(t / step) * step);
  return out;
};

const format = (t) => (Number.isInteger(t) ? String(t) : String(Number(t.toFixed(2))));

// A tooltip for `box`: text(x, y) gives its line for the pointer at (x, y) pixels in the box, or null.
const hover = (root, tip, box, text) => {
  box.addEventListener("mousemove", (event) => {
    const area = box.getBoundingClientRect();
    const line = text(event.clientX - area.left, event.clientY - area.top, area);
    tip.hidden = line === null;
    if (line === null) return;
    tip.textContent = line;
    const outer = root.getBoundingClientRect();
    const x = event.clientX - outer.left;
    const right = x + 12 + tip.offsetWidth <= outer.width;  // else left of the pointer, inside the chart
    tip.style.left = `${right ? x + 12 : x - 12 - tip.offsetWidth}px`;
    tip.style.top = `${event.clientY - outer.top + 12}px`;
  });
  box.addEventListener("mouseleave", () => { tip.hidden = true; });
};

// ---- the clip view ------------------------------------------------------------------------

function drawClipView(root, tip, data) {
  const grid = el("div", "cv-grid");
  root.insertBefore(grid, tip);
  const span = data.seconds;
  const time = (x, area) => (x / area.width) * span;

  // An image over its own stretch of the time axis (the spectrogram and the taggram may end a frame apart).
  const plot = (className, part, alt, height) => {
    const box = el("div", `lc-plot ${className}`);
    const image = el("img");
    image.src = part.src;
    image.alt = alt;
    image.style.width = `${(100 * part.seconds) / span}%`;
    box.appendChild(image);
    box.style.height = `${height}px`;
    grid.appendChild(box);
    return box;
  };

  if (data.mel) {
    const mel = data.mel;
    const axis = el("div", "cv-mel-axis");
    axis.append(el("div", "lc-tick-label", String(mel.bands - 1)), el("div", "lc-axis-title lc-vertical", "mel band"),
                el("div", "lc-tick-label", "0"));
    grid.appendChild(axis);
    const box = plot("cv-mel", mel, "mel-spectrogram", mel.height);
    grid.appendChild(el("div"));
    hover(root, tip, box, (x, y, area) => {
      const t = time(x, area);
      return t < mel.seconds ? `${t.toFixed(1)} s, mel band ${Math.floor((1 - y / area.height) * mel.bands)}` : null;
    });
  }
  if (data.taggram) {
    const tg = data.taggram;
    const labels = el("div", "cv-labels");
    tg.tags.forEach((tag, i) => {
      const label = el("div", "cv-label", tag);
      label.style.color = tg.colors[i];
      label.style.height = `${tg.row}px`;
      labels.appendChild(label);
    });
    grid.appendChild(labels);
    const box = plot("cv-taggram", tg, "taggram", tg.row * tg.tags.length);
    const bar = el("div", "cv-colorbar");
    const ramp = el("div", "cv-ramp");
    ramp.style.background = tg.gradient;
    bar.append(el("div", "", "1"), ramp, el("div", "", "0"), el("div", "lc-axis-title", "prob."));
    grid.appendChild(bar);
    const frames = tg.values.length ? tg.values[0].length : 0;
    hover(root, tip, box, (x, y, area) => {
      const t = time(x, area);
      const frame = Math.floor((t / tg.seconds) * frames);
      if (frame < 0 || frame >= frames) return null;
      const row = Math.min(tg.tags.length - 1, Math.floor((y / area.height) * tg.tags.length));
      return `${tg.tags[row]} at ${t.toFixed(1)} s: ${tg.values[row][frame].toFixed(2)}`;
    });
  }
  grid.appendChild(el("div"));
  const axis = el("div", "lc-xaxis");
  for (const t of ticks(span, 8)) {
    const tick = el("span", "lc-tick", format(t));
    tick.style.left = `${(100 * t) / span}%`;
    axis.appendChild(tick);
  }
  grid.append(axis, el("div"), el("div"), el("div", "lc-axis-title lc-center", data.time_title), el("div"));
}

// ---- ROC and precision-recall curves ------------------------------------------------------

const Y_TOP = 1.02;  // a little room above 1, where the best curves run

function drawPanel(root, tip, panel, style) {
  const cell = el("div", "cu-panel");
  const yTitle = el("div", "lc-axis-title lc-vertical", panel.y_title);
  const yTicks = el("div", "cu-yticks");
  const box = el("div", "lc-plot cu-plot");
  const plot = svg("svg", { width: "100%", height: "100%" });
  const pct = (v) => `${100 * v}%`;
  const top = (v) => pct(1 - v / Y_TOP);
  for (const t of ticks(1, 5)) {
    plot.appendChild(svg("line", { x1: pct(t), x2: pct(t), y1: "0%", y2: "100%", class: "cu-grid" }));
    plot.appendChild(svg("line", { x1: "0%", x2: "100%", y1: top(t), y2: top(t), class: "cu-grid" }));
    const label = el("span", "lc-tick-label cu-ytick", format(t));
    label.style.top = top(t);
    yTicks.appendChild(label);
  }
  const [[x1, y1], [x2, y2]] = panel.chance;
  plot.appendChild(svg("line", { x1: pct(x1), y1: top(y1), x2: pct(x2), y2: top(y2), class: "cu-chance",
                                 stroke: style.muted }));
  // The curve in the unit square, stretched to the box; its stroke keeps its width (non-scaling).
  const unit = svg("svg", { viewBox: `0 0 1 ${Y_TOP}`, preserveAspectRatio: "none", width: "100%", height: "100%" });
  const line = panel.line;
  const d = line.x.map((x, i) => `${i ? "L" : "M"}${x},${(Y_TOP - line.y[i]).toFixed(4)}`).join("");
  unit.appendChild(svg("path", { d, stroke: line.color, class: "cu-line" }));
  plot.appendChild(unit);
  box.appendChild(plot);
  for (const point of panel.points) {
    const mark = el("div", `cu-point cu-${point.symbol}`);
    mark.style.left = pct(point.x);
    mark.style.top = top(point.y);
    mark.style.background = style.text;
    box.appendChild(mark);
  }
  const cursor = el("div", "cu-cursor");
  cursor.hidden = true;
  cursor.style.borderColor = line.color;
  box.appendChild(cursor);
  hover(root, tip, box, (x, y, area) => {
    let best = -1, distance = Infinity;  // the curve's point nearest the pointer, on screen
    for (let i = 0; i < line.x.length; i++) {
      const dx = line.x[i] * area.width - x, dy = (1 - line.y[i] / Y_TOP) * area.height - y;
      const d2 = dx * dx + dy * dy;
      if (d2 < distance) { distance = d2; best = i; }
    }
    cursor.hidden = best < 0;
    if (best < 0) return null;
    cursor.style.left = pct(line.x[best]);
    cursor.style.top = top(line.y[best]);
    const [xName, yName] = line.names;
    return `${xName} ${line.x[best].toFixed(3)}, ${yName} ${line.y[best].toFixed(3)}, threshold ${line.t[best].toFixed(3)}`;
  });
  box.addEventListener("mouseleave", () => { cursor.hidden = true; });
  const xTicks = el("div", "lc-xaxis");
  for (const t of ticks(1, 5)) {
    const tick = el("span", "lc-tick", format(t));
    tick.style.left = pct(t);
    xTicks.appendChild(tick);
  }
  cell.append(yTitle, yTicks, box, el("div"), el("div"), xTicks, el("div"), el("div"),
              el("div", "lc-axis-title lc-center", panel.x_title));
  return cell;
}

function drawCurves(root, tip, data) {
  const legend = el("div", "cu-legend");
  for (const item of data.legend) {
    const entry = el("span", "cu-entry");
    const key = el("span", `cu-key cu-key-${item.kind}`);
    key.style.setProperty("--cu-key", item.color);
    entry.append(key, el("span", "", item.name));
    legend.appendChild(entry);
  }
  const panels = el("div", "cu-panels");
  for (const panel of data.panels) panels.appendChild(drawPanel(root, tip, panel, data.style));
  panels.style.height = `${data.height}px`;
  root.insertBefore(legend, tip);
  root.insertBefore(panels, tip);
}

export default function ({ parentElement, data }) {
  // A new drawing replaces the last one; the component's own <style> beside it stays.
  const root = el("div", "lc");
  for (const [name, value] of Object.entries(data.style)) root.style.setProperty(`--lc-${name}`, value);
  root.appendChild(el("div", "lc-title", data.title));
  const tip = el("div", "lc-tip");
  tip.hidden = true;
  root.appendChild(tip);
  (data.kind === "curves" ? drawCurves : drawClipView)(root, tip, data);
  const last = parentElement.querySelector(".lc");
  if (last) last.replaceWith(root);
  else parentElement.appendChild(root);
}
