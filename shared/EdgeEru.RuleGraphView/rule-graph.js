// A domain's rule graph as SVG (pure: it only builds elements). Served by eru-lb's dashboard and by eru-core's console.
// d: { domain, init, nodes: [{ id, type, label, succ, fail, hits? }] }; hits are drawn when the caller has them (the LB).
const svgNs = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const e = document.createElementNS(svgNs, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Layers by longest path from init (graphs are acyclic), so every edge points right.
export function layout(d) {
  const byId = new Map(d.nodes.map(n => [n.id, n]));
  const depth = new Map([[d.init, 0]]);
  let changed = true;
  for (let round = 0; changed && round <= d.nodes.length; round++) {
    changed = false;
    for (const n of d.nodes) {
      if (!depth.has(n.id)) continue;
      for (const next of [n.succ, n.fail]) {
        if (next && byId.has(next) && (depth.get(next) ?? -1) < depth.get(n.id) + 1) {
          depth.set(next, depth.get(n.id) + 1);
          changed = true;
        }
      }
    }
  }
  const maxDepth = Math.max(0, ...depth.values());
  for (const n of d.nodes) if (!depth.has(n.id)) depth.set(n.id, maxDepth + 1); // unreachable nodes last
  const layers = [];
  for (const n of d.nodes) (layers[depth.get(n.id)] ??= []).push(n);
  const pos = new Map();
  layers.forEach((layer, x) => layer.forEach((n, y) => pos.set(n.id, { x: 20 + x * 230, y: 20 + y * 80 })));
  return { pos, width: 20 + layers.length * 230, height: 20 + Math.max(...layers.map(l => l.length)) * 80 };
}

export function graph(d) {
  const { pos, width, height } = layout(d);
  const svg = el("svg", { width, height, "data-domain": d.domain, role: "img", "aria-label": `rule graph of ${d.domain}` });
  for (const n of d.nodes) {
    for (const [kind, target] of [["succ", n.succ], ["fail", n.fail]]) {
      if (!target || !pos.has(target)) continue;
      const a = pos.get(n.id), b = pos.get(target);
      const x1 = a.x + 190, y1 = a.y + (kind === "succ" ? 18 : 40), x2 = b.x, y2 = b.y + 29;
      svg.append(el("path", { class: `edge ${kind}`, d: `M${x1},${y1} C${x1 + 25},${y1} ${x2 - 25},${y2} ${x2},${y2}` }));
      svg.append(el("text", { class: "edge-label", x: x1 + 3, y: y1 - 3 }, kind));
    }
  }
  for (const n of d.nodes) {
    const p = pos.get(n.id);
    const g = el("g", { class: `node ${n.type}`, "data-node": n.id, transform: `translate(${p.x},${p.y})` });
    g.append(el("rect", { width: 190, height: 58 }));
    g.append(el("text", { class: "id", x: 8, y: 17 }, n.id + (n.id === d.init ? " (init)" : "")));
    g.append(el("text", { class: "label", x: 8, y: 33 }, n.label.length > 32 ? n.label.slice(0, 31) + "…" : n.label));
    if (n.hits !== undefined) g.append(el("text", { class: "hits", x: 8, y: 50 }, `${n.hits} hits`));
    svg.append(g);
  }
  return svg;
}

// The renderer's style, for a page to put in its <style>.
export const css = `
  svg[data-domain] { border: 1px solid #ddd; background: #fcfcfc; }
  .node rect { stroke: #555; fill: #fff; rx: 6; }
  .node.backend rect { fill: #eef6ff; }
  .node.respond rect, .node.redirect rect { fill: #f5f5f5; }
  .node .id { font-weight: 600; }
  .node .label { font-size: 11px; fill: #444; }
  .node .hits { font-size: 11px; fill: #06c; }
  .edge { fill: none; stroke-width: 1.5; }
  .edge.succ { stroke: #2a2; }
  .edge.fail { stroke: #c33; stroke-dasharray: 5 3; }
  .edge-label { font-size: 10px; }
`;
