package console_test

import (
	"testing"
	"time"
)

// The layout, run in the browser on random graphs: every edge of an
// acyclic graph goes left to right, nodes of a column do not overlap, a
// cycle still ends in a layout of every node, and the pipeline is three
// columns.
func TestLayoutProperties(t *testing.T) {
	f := newCannedAPI(t)
	p := newPage(t)
	p.open(f.URL + "/")
	p.wait("the page", 20*time.Second, `!!window.__console`, "")
	got := eval[string](p, `(async () => {
	  const { layout } = await import('/console/layout.js');
	  let seed = 42;
	  const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
	  const check = (nodes, edges, acyclic) => {
	    const L = layout(nodes, edges);
	    if (L.pos.size !== nodes.length) return 'lost nodes';
	    for (const e of edges) if (acyclic && L.pos.get(e.from).x >= L.pos.get(e.to).x) return 'edge ' + e.from + '→' + e.to + ' goes left';
	    const cols = new Map();
	    for (const n of nodes) { const p = L.pos.get(n.id); (cols.get(p.x) || cols.set(p.x, []).get(p.x)).push([p.y, p.y + n.height]); }
	    for (const c of cols.values()) { c.sort((a, b) => a[0] - b[0]); for (let i = 1; i < c.length; i++) if (c[i][0] < c[i - 1][1]) return 'overlap'; }
	    if (L.width <= 0 || L.height <= 0) return 'empty size';
	    return '';
	  };
	  for (let round = 0; round < 200; round++) {
	    const n = 1 + rnd(60);
	    const nodes = Array.from({ length: n }, (_, i) => ({ id: 'n' + i, height: 60 + rnd(80) }));
	    const dag = [], any = [];
	    for (let k = 0; k < n * 2; k++) {
	      const a = rnd(n), b = rnd(n);
	      if (a < b) dag.push({ from: 'n' + a, to: 'n' + b });
	      any.push({ from: 'n' + a, to: 'n' + b });
	    }
	    const bad = check(nodes, dag, true) || check(nodes, any, false);
	    if (bad) return 'round ' + round + ': ' + bad;
	  }
	  const pipe = layout([{ id: 'printer', height: 90 }, { id: 'feeder', height: 90 }, { id: 'encryptor', height: 90 }],
	    [{ from: 'feeder', to: 'encryptor' }, { from: 'encryptor', to: 'printer' }]);
	  return ['feeder', 'encryptor', 'printer'].map((s) => pipe.pos.get(s).layer).join(',');
	})()`)
	if got != "0,1,2" {
		t.Fatalf("layout: %s", got)
	}
}
