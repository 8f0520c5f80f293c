// The clip view (dashboard/clip_view.py): a clip's mel-spectrogram above its taggram, on one
// time axis, drawn from two PNGs with a hover that reads the value under the pointer.
//
// Why not a plotly figure: a page switch or a new clip mounted a fresh plotly figure, which cost
// the browser about 300 ms (docs/benchmarks.md). Here the browser decodes two small images and
// lays out a few dozen elements. Every text comes from the run folder, so it is set as
// textContent, never as HTML.

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
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

const format = (t) => (Number.isInteger(t) ? String(t) : t.toFixed(1));

export default function ({ parentElement, data }) {
  // A new drawing replaces the last one; the component's own <style> beside it stays.
  const root = el("div", "cv");
  const last = parentElement.querySelector(".cv");
  if (last) last.replaceWith(root);
  else parentElement.appendChild(root);
  root.appendChild(el("div", "cv-title", data.title));
  const grid = el("div", "cv-grid");
  root.appendChild(grid);
  const tip = el("div", "cv-tip");
  tip.hidden = true;
  root.appendChild(tip);
  const span = data.seconds;

  // The pointer's time on the shared axis, and its height in the box (0 top, 1 bottom).
  const hover = (box, text) => {
    box.addEventListener("mousemove", (event) => {
      const area = box.getBoundingClientRect();
      const t = ((event.clientX - area.left) / area.width) * span;
      const fy = (event.clientY - area.top) / area.height;
      const line = t >= 0 && fy >= 0 && fy < 1 ? text(t, fy) : null;
      tip.hidden = line === null;
      if (line === null) return;
      tip.textContent = line;
      const outer = root.getBoundingClientRect();
      const x = event.clientX - outer.left;
      const right = x + 12 + tip.offsetWidth <= outer.width;  // else left of the pointer, inside the view
      tip.style.left = `${right ? x + 12 : x - 12 - tip.offsetWidth}px`;
      tip.style.top = `${event.clientY - outer.top + 12}px`;
    });
    box.addEventListener("mouseleave", () => { tip.hidden = true; });
  };

  // An image over its own stretch of the time axis (the spectrogram and the taggram may end a frame apart).
  const plot = (className, part, alt, height) => {
    const box = el("div", `cv-plot ${className}`);
    const image = el("img");
    image.src = part.src;
    image.alt = alt;
    image.style.width = `${(100 * part.seconds) / span}%`;
    box.appendChild(image);
    box.style.height = `${height}px`;
    grid.appendChild(box);
    return box;
  };

  for (const [name, value] of Object.entries(data.style)) root.style.setProperty(`--cv-${name}`, value);
  if (data.mel) {
    const mel = data.mel;
    const axis = el("div", "cv-mel-axis");
    axis.append(el("div", "cv-tick-label", String(mel.bands - 1)), el("div", "cv-axis-title", "mel band"),
                el("div", "cv-tick-label", "0"));
    grid.appendChild(axis);
    const box = plot("cv-mel", mel, "mel-spectrogram", mel.height);
    grid.appendChild(el("div"));
    hover(box, (t, fy) => t < mel.seconds ? `${t.toFixed(1)} s, mel band ${Math.floor((1 - fy) * mel.bands)}` : null);
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
    bar.append(el("div", "cv-bar-label", "1"), ramp, el("div", "cv-bar-label", "0"), el("div", "cv-bar-title", "prob."));
    grid.appendChild(bar);
    const frames = tg.values.length ? tg.values[0].length : 0;
    hover(box, (t, fy) => {
      const frame = Math.floor((t / tg.seconds) * frames);
      if (frame >= frames) return null;
      const row = Math.min(tg.tags.length - 1, Math.floor(fy * tg.tags.length));
      return `${tg.tags[row]} at ${t.toFixed(1)} s: ${tg.values[row][frame].toFixed(2)}`;
    });
  }
  grid.appendChild(el("div"));
  const axis = el("div", "cv-xaxis");
  for (const t of ticks(span, 8)) {
    const tick = el("span", "cv-tick", format(t));
    tick.style.left = `${(100 * t) / span}%`;
    axis.appendChild(tick);
  }
  grid.appendChild(axis);
  grid.appendChild(el("div"));
  grid.appendChild(el("div"));
  grid.appendChild(el("div", "cv-xaxis-title", data.time_title));
}
