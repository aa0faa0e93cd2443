package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler"
)

// Hostile strings in every place the server gives one (service, gate and
// spec names, commands, failures, task messages, events) are shown as
// text: no element is made of them, no script runs, and bidi controls are
// shown as escapes instead of reordering what follows.
func TestHostileNamesAreText(t *testing.T) {
	f := newCannedAPI(t)
	img := `<img src=x onerror="__pwned=1">`
	scr := `"><script>__pwned=2</script>`
	bidi := "abc\u202efdp"
	f.update(func(f *cannedAPI) {
		spec := &linkspec.Spec{Version: 1, Services: map[string]*linkspec.Service{
			img: {Command: scr, Instances: 1, Gates: map[string]linkspec.Pattern{bidi: linkspec.Push}},
			scr: {Command: "x", Args: []string{"<b>bold</b>"}, Instances: 1, Gates: map[string]linkspec.Pattern{"in": linkspec.Pull}},
		}, Links: []linkspec.Link{{From: linkspec.GateRef{Service: img, Gate: bidi}, To: linkspec.GateRef{Service: scr, Gate: "in"}}}}
		f.spec = scheduler.SpecInfo{Version: 7, Name: `<img src=x onerror=__pwned=4>.yaml`, Spec: spec}
		f.status = scheduler.Status{SpecVersion: 7, Services: []scheduler.ServiceStatus{
			{Name: img, Wanted: 1, Pending: 1, Failures: 1, LastFailure: `<svg onload=__pwned=5>`,
				Waiting: &scheduler.Waiting{Tasks: 1, Reason: "rack:" + img, Reasons: map[string]int{"rack:" + img: 3, "cpus": 1}}},
			{Name: scr, Wanted: 1, Running: 1, Converged: true},
		}}
		f.tasks = []scheduler.TaskInfo{{ID: img + ".1", Service: img, Phase: "pending", Message: `<iframe src="javascript:__pwned=6">`, AgentID: "\u202eev", Created: time.Now()}}
		f.logs = map[string]string{img + ".1/stdout": "plain line\n\x1b[31mred\x1b[0m <script>__pwned=8</script>\n\u202eevil\n"}
		f.links = []scheduler.TaskLinks{{TaskID: img + ".1", Service: img, Version: 1, Table: &linkspec.Table{Out: map[string]linkspec.OutGate{bidi: {Pattern: linkspec.Push, Peers: []string{`tcp://"><img src=x onerror=__pwned=7>:1`}}}}}}
	})
	p := newPage(t)
	p.open(f.URL + "/")
	p.wait("two services", 20*time.Second, jsNodes+` === 2`, jsNotice)
	p.wait("the live stream", 10*time.Second, `document.getElementById('conn').dataset.state === 'live'`, jsNotice)
	f.publish("links_refused", map[string]any{"task_id": img + ".1", "version": 1, "error": scr + bidi})
	p.wait("the event", 10*time.Second, `document.getElementById('events').textContent.includes('__pwned=2</script>')`, `document.getElementById('events').textContent`)
	eval[bool](p, `(() => { for (const n of document.querySelectorAll('#graph g.node')) if (n.dataset.service.startsWith('<img')) n.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true })()`)
	p.wait("the drill-down", 10*time.Second, jsDetailText+`.includes('javascript:__pwned=6')`, jsDetailText)
	eval[bool](p, `(document.querySelector('#detail table[data-kind=tasks] tbody tr').dispatchEvent(new MouseEvent('click', {bubbles: true})), true)`)
	p.wait("the task's log", 10*time.Second, `(document.querySelector('#d-log pre') || {}).textContent?.includes('__pwned=8')`, `document.getElementById('d-log').textContent`)
	if got := eval[string](p, `document.querySelector('#d-log pre').textContent`); got != "plain line\n\\u{1B}[31mred\\u{1B}[0m <script>__pwned=8</script>\n\\u{202E}evil\n" {
		t.Errorf("the log shows %q", got)
	}
	body := eval[string](p, `document.body.textContent + document.title`)
	for _, want := range []string{
		img, `<img src=x onerror=__pwned=4>.yaml`, `<svg onload=__pwned=5>`, `tcp://"><img src=x onerror=__pwned=7>:1`,
		`abc\u{202E}fdp`, `\u{202E}ev`, "<b>bold</b>", "<script>__pwned=8</script>",
		"1 pending: rack:" + img + " ruled out 3 offers (also cpus: 1)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page does not show %q as text", want)
		}
	}
	if strings.ContainsRune(body, '\u202e') {
		t.Error("the page shows a raw bidi override")
	}
	if n := eval[int](p, `document.querySelectorAll('b, iframe, svg [onload], img').length`); n != 0 {
		t.Errorf("%d elements were made from server strings", n)
	}
	p.cleanPage()
}

// With a token configured, the page says it needs one, works once given
// it (the stream too: it is read with fetch, so the token is a header),
// and keeps it only in sessionStorage.
func TestToken(t *testing.T) {
	f := newCannedAPI(t)
	f.update(func(f *cannedAPI) {
		f.token = "s3cret"
		f.layered(2, 1, 2, 1)
	})
	p := newPage(t)
	p.open(f.URL + "/")
	p.wait("the token prompt", 20*time.Second, `document.getElementById('notice').textContent.includes('needs a token')`, jsNotice)
	if n := eval[int](p, jsNodes); n != 0 {
		t.Fatalf("%d services drawn without the token", n)
	}
	p.setValue("#token", "s3cret")
	p.click("#token-form button")
	p.wait("the services", 20*time.Second, jsNodes+` === 2`, jsNotice)
	p.wait("the live stream", 20*time.Second, `document.getElementById('conn').dataset.state === 'live'`, jsNotice)
	if got := eval[string](p, `sessionStorage.getItem('tiltai.token') + '|' + localStorage.length + '|' + document.cookie + '|' + location.href`); got != "s3cret|0||"+f.URL+"/" {
		t.Fatalf("the token is kept as %q", got)
	}
	eval[bool](p, `(document.querySelector('#graph g.node[data-service="s00-00"]').dispatchEvent(new MouseEvent('click', {bubbles: true})), true)`)
	p.wait("the scale form", 10*time.Second, `!!document.getElementById('scale-go')`, jsDetailText)
	p.setValue("#scale-n", "3")
	p.click("#scale-go")
	p.wait("the scale answer", 10*time.Second, `document.getElementById('notice').textContent.includes('s00-00')`, jsNotice)
	f.mu.Lock()
	writes := strings.Join(f.writes, ",")
	f.mu.Unlock()
	if writes != "POST /v1/services/s00-00/scale" {
		t.Fatalf("writes: %q", writes)
	}
	p.cleanPage()
}
