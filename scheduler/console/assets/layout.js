// A left-to-right layered layout of a directed graph: longest-path
// layering (cycles broken by ignoring the edges that close them), then
// barycentre ordering within each layer, sweeping down and up a few times.
// Pure: nodes and edges in, positions out.

// nodes: [{id, height}]; edges: [{from, to}]. Returns {pos: Map id →
// {x, y, layer}, width, height}.
export function layout(nodes, edges, opt = {}) {
  const nodeW = opt.nodeWidth ?? 220, gapX = opt.gapX ?? 150, gapY = opt.gapY ?? 28, margin = opt.margin ?? 20;
  const ids = nodes.map((n) => n.id);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const out = new Map(ids.map((id) => [id, []]));
  const inn = new Map(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (!byId.has(e.from) || !byId.has(e.to) || e.from === e.to) continue;
    out.get(e.from).push(e.to);
  }
  // Drop the edges that close a cycle (a DFS back edge), so layering ends.
  const state = new Map();
  const acyclic = new Map(ids.map((id) => [id, []]));
  for (const root of ids) {
    if (state.has(root)) continue;
    const stack = [[root, 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [v, i] = top;
      const succ = out.get(v);
      if (i >= succ.length) { state.set(v, 2); stack.pop(); continue; }
      top[1]++;
      const w = succ[i];
      if (state.get(w) === 1) continue; // back edge
      acyclic.get(v).push(w);
      inn.get(w).push(v);
      if (!state.has(w)) { state.set(w, 1); stack.push([w, 0]); }
    }
  }
  // Longest path from a source, in topological order (Kahn).
  const layer = new Map(ids.map((id) => [id, 0]));
  const indeg = new Map(ids.map((id) => [id, inn.get(id).length]));
  const queue = ids.filter((id) => indeg.get(id) === 0);
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q];
    for (const w of acyclic.get(v)) {
      layer.set(w, Math.max(layer.get(w), layer.get(v) + 1));
      indeg.set(w, indeg.get(w) - 1);
      if (indeg.get(w) === 0) queue.push(w);
    }
  }
  const layers = [];
  for (const id of ids) {
    const l = layer.get(id);
    (layers[l] ??= []).push(id);
  }
  for (let l = 0; l < layers.length; l++) layers[l] ??= [];
  // Barycentre ordering: a node goes where its neighbours in the layer
  // before (down) or after (up) are, on average.
  const order = new Map();
  const setOrder = () => layers.forEach((ls) => ls.forEach((id, i) => order.set(id, i)));
  setOrder();
  const bary = (id, nbrs) => {
    const ns = nbrs.get(id);
    if (!ns.length) return order.get(id);
    return ns.reduce((a, n) => a + order.get(n), 0) / ns.length;
  };
  for (let pass = 0; pass < 6; pass++) {
    const down = pass % 2 === 0;
    const range = down ? layers.map((_, i) => i).slice(1) : layers.map((_, i) => i).reverse().slice(1);
    for (const l of range) {
      const keyed = layers[l].map((id) => [id, bary(id, down ? inn : acyclic)]);
      keyed.sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
      layers[l] = keyed.map((k) => k[0]);
      setOrder();
    }
  }
  // Coordinates: layers side by side, each column's nodes stacked and
  // centred on the tallest column.
  const colH = layers.map((ls) => ls.reduce((a, id) => a + byId.get(id).height, 0) + gapY * Math.max(0, ls.length - 1));
  const height = Math.max(0, ...colH) + 2 * margin;
  const pos = new Map();
  layers.forEach((ls, l) => {
    let y = margin + (height - 2 * margin - colH[l]) / 2;
    for (const id of ls) {
      pos.set(id, { x: margin + l * (nodeW + gapX), y, layer: l });
      y += byId.get(id).height + gapY;
    }
  });
  const width = 2 * margin + layers.length * nodeW + Math.max(0, layers.length - 1) * gapX;
  return { pos, width, height, nodeWidth: nodeW };
}
