// An SVG drawing of a tiny network for one example: each unit shows a, and δ below it;
// edge width and colour follow Θ (blue positive, orange negative).
import { fmt } from "./matrix.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text != null) node.textContent = text;
  return node;
}

/**
 * @param sizes  units per layer, input first (no bias units)
 * @param thetas Θ^(l) per layer, shape (s_{l+1}, s_l + 1)
 * @param example one per-example trace entry: layers[i].a (with the bias in column 0 for l < L)
 *                and layers[i].delta
 */
export function networkDiagram(sizes, thetas, example) {
  const width = 160 * sizes.length + 40;
  const tallest = Math.max(...sizes);
  const height = Math.max(200, tallest * 78 + 40);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "net-diagram", role: "img",
    "aria-label": "network for the current example" });
  const x = (l) => 70 + l * ((width - 140) / Math.max(1, sizes.length - 1));
  const y = (l, j) => height / 2 + (j - (sizes[l] - 1) / 2) * 78;
  const weightScale = Math.max(1e-9, ...thetas.flat(2).map(Math.abs));

  thetas.forEach((theta, l) => {
    theta.forEach((row, j) => row.slice(1).forEach((w, k) => {
      root.append(svg("line", {
        x1: x(l), y1: y(l, k), x2: x(l + 1), y2: y(l + 1, j),
        stroke: w >= 0 ? "#2563eb" : "#ea580c", "stroke-opacity": 0.25 + 0.55 * Math.abs(w) / weightScale,
        "stroke-width": 0.8 + 4 * Math.abs(w) / weightScale,
      }));
    }));
  });
  sizes.forEach((size, l) => {
    const layer = example.layers[l];
    const hasBias = l < sizes.length - 1;
    root.append(svg("text", { x: x(l), y: 18, class: "net-layer-label", "text-anchor": "middle" },
      l === 0 ? "input (l = 1)" : l === sizes.length - 1 ? `output (l = ${l + 1})` : `hidden (l = ${l + 1})`));
    for (let j = 0; j < size; j += 1) {
      const a = layer.a[hasBias ? j + 1 : j];
      const group = svg("g", { class: "net-unit" });
      group.append(svg("circle", { cx: x(l), cy: y(l, j), r: 24, class: "net-node" }));
      group.append(svg("text", { x: x(l), y: y(l, j) + 4, "text-anchor": "middle", class: "net-a" }, fmt(a)));
      if (layer.delta) {
        group.append(svg("text", { x: x(l), y: y(l, j) + 38, "text-anchor": "middle", class: "net-delta" },
          `δ ${fmt(layer.delta[j])}`));
      }
      root.append(group);
    }
  });
  return root;
}
