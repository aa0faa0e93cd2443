package console_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkConsole renders the topology in a real browser from canned API
// answers: the 3-service pipeline's size beside 100 services (10 layers
// of 10, 180 links) with 10,000 tasks. It reports the time from navigation
// to the first drawn topology, the time from an event to the page showing
// the new counters (the refresh it triggers, over HTTP, and the render),
// the render alone, and opening a service of 100 tasks.
func BenchmarkConsole(b *testing.B) {
	for _, c := range []struct{ layers, width, tasks int }{{3, 1, 1}, {10, 10, 100}} {
		b.Run(fmt.Sprintf("services=%d/tasks=%d", c.layers*c.width, c.layers*c.width*c.tasks), func(b *testing.B) {
			f := newCannedAPI(b)
			round := 1
			f.update(func(f *cannedAPI) { f.layered(c.layers, c.width, c.tasks, round) })
			p := newPage(b)
			var paint, update, render, drill time.Duration
			const updates = 10
			b.ResetTimer()
			for b.Loop() {
				p.open(f.URL + "/")
				p.wait("the topology", time.Minute, `window.__console.firstPaint !== null && window.__console.streams > 0`, jsNotice)
				paint += time.Duration(eval[float64](p, `window.__console.firstPaint`) * float64(time.Millisecond))
				for range updates {
					round++
					f.update(func(f *cannedAPI) { f.layered(c.layers, c.width, c.tasks, round) })
					n := eval[int](p, `window.__console.renders.length`)
					start := time.Now()
					f.publish("task_running", map[string]any{"task_id": "s00-00.1"})
					p.wait("the update", 30*time.Second, fmt.Sprintf(`window.__console.renders.length > %d && window.__console.renders.length <= 200`, n), jsNotice)
					update += time.Since(start)
					render += time.Duration(eval[float64](p, `window.__console.renders.at(-1)`) * float64(time.Millisecond))
				}
				start := time.Now()
				eval[bool](p, `(document.querySelector('#graph g.node[data-service="s00-00"]').dispatchEvent(new MouseEvent('click', {bubbles: true})), true)`)
				p.wait("the drill-down", 30*time.Second, fmt.Sprintf(`document.querySelectorAll('#detail table[data-kind=tasks] tbody tr').length === %d`, c.tasks), jsDetailText)
				drill += time.Since(start)
			}
			n := float64(b.N)
			b.ReportMetric(float64(paint.Microseconds())/1e3/n, "ms/first-paint")
			b.ReportMetric(float64(update.Microseconds())/1e3/n/updates, "ms/update")
			b.ReportMetric(float64(render.Microseconds())/1e3/n/updates, "ms/render")
			b.ReportMetric(float64(drill.Microseconds())/1e3/n, "ms/drill-down")
		})
	}
}
