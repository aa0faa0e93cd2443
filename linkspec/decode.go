package linkspec

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// decoder turns the located tree into a Spec, recording where each field was
// written and reporting shape problems: unknown fields, wrong types,
// duplicate keys. Values it cannot read keep their defaults and are marked
// bad, so validation does not report them a second time.
type decoder struct {
	r     *reporter
	bad   map[string]bool
	ctx   context.Context // nil: never stops
	seen  int             // mappings walked, to look at ctx now and then
	ended bool
}

// stopped reports, now and then, whether ctx has ended; the result of a
// stopped decode is dropped.
func (d *decoder) stopped() bool {
	d.seen++
	if !d.ended && d.ctx != nil && d.seen%(checkEvery/16) == 0 {
		d.ended = d.ctx.Err() != nil
	}
	return d.ended
}

type field struct {
	name string
	fn   func(path string, v *node)
}

// fields walks a mapping, dispatching known keys and reporting the rest.
func (d *decoder) fields(path, what string, n *node, known []field) bool {
	if d.stopped() {
		return false
	}
	if n.kind != kMap {
		d.typeError(path, n, what+" must be a mapping (key: value lines)", "")
		return false
	}
	names := make([]string, len(known))
	for i, f := range known {
		names[i] = f.name
	}
	seen := map[string]Pos{}
	for i, k := range n.keys {
		key := k.text
		fpath := join(path, key)
		if first, dup := seen[key]; dup {
			d.r.errorAt(k.pos, fpath, fmt.Sprintf("keep one (the first is at line %d)", first.Line), "duplicate field %q in %s", key, what)
			continue
		}
		seen[key] = k.pos
		var fn func(string, *node)
		for _, f := range known {
			if f.name == key {
				fn = f.fn
				break
			}
		}
		if fn == nil {
			if path == "" && strings.HasPrefix(key, "x-") {
				// Extension fields, as in Compose files: a place for
				// anchors (&defaults) that other entries merge in.
				continue
			}
			d.r.errorAt(k.pos, fpath, suggest(key, names), "unknown field %q in %s", key, what)
			continue
		}
		d.r.locs[fpath] = n.vals[i].pos
		if n.vals[i].pos.Line == 0 {
			d.r.locs[fpath] = k.pos
		}
		fn(fpath, n.vals[i])
	}
	return true
}

func (d *decoder) typeError(path string, n *node, msg, hint string) {
	d.bad[path] = true
	if hint == "" {
		hint = "see docs/linkspec.md for the field's type"
	}
	d.r.errorAt(n.pos, path, hint, "%s, not %s", msg, n.describe())
}

func (d *decoder) str(path string, n *node, what string) (string, bool) {
	if n.kind != kScalar || n.typ != tStr {
		d.typeError(path, n, what+" must be a string", "quote it")
		return "", false
	}
	return n.text, true
}

// text accepts any scalar as its text: args and env values are strings to
// the process, and `--rate: 50` or `RATE: 50` should not need quotes.
func (d *decoder) text(path string, n *node, what string) (string, bool) {
	if n.kind != kScalar {
		d.typeError(path, n, what+" must be a string", "quote it")
		return "", false
	}
	return n.text, true
}

// integer reads a whole number in l's range.
func (d *decoder) integer(path string, n *node, l numLimit) (int, bool) {
	v, ok := d.number(path, n, l)
	return int(v), ok
}

// number reads a number in l's range; a problem quotes it as written.
func (d *decoder) number(path string, n *node, l numLimit) (float64, bool) {
	if n.kind != kScalar || (n.typ != tInt && n.typ != tFloat) {
		want := "a number"
		if l.whole {
			want = "a whole number"
		}
		hint := "write " + want + ", " + l.allowed()
		if l.outHint != "" {
			hint = l.outHint
		}
		if n.kind == kScalar && n.typ == tStr {
			if _, _, ok := plainNumber(n.text); ok {
				hint = "write the number without quotes"
			}
		}
		d.typeError(path, n, l.what+" must be "+want, hint)
		return 0, false
	}
	if msg, hint := l.check(n.num, n.raw); msg != "" {
		d.bad[path] = true
		d.r.errorAt(n.pos, path, hint, "%s", msg)
		return 0, false
	}
	return n.num, true
}

func (d *decoder) boolean(path string, n *node, what string) (bool, bool) {
	if n.kind != kScalar || n.typ != tBool {
		d.typeError(path, n, what+" must be true or false", "")
		return false, false
	}
	return n.text == "true", true
}

// duration reads a Go duration in l's range; 0 may be written bare.
func (d *decoder) duration(path string, n *node, l durLimit) (Duration, bool) {
	var v time.Duration
	switch {
	case n.kind == kScalar && n.typ == tInt && n.num == 0:
	case n.kind == kScalar && n.typ == tStr:
		var err error
		if v, err = time.ParseDuration(n.text); err != nil {
			d.bad[path] = true
			if durationSyntax.MatchString(n.text) {
				d.r.errorAt(n.pos, path, "use "+l.allowed(), "%s %s is out of range", l.what, n.text)
			} else {
				d.r.errorAt(n.pos, path, "write a duration such as \"5s\", \"1m30s\" or \"250ms\"", "%s %q is not a duration", l.what, n.text)
			}
			return 0, false
		}
	default:
		hint := fmt.Sprintf("write a duration with a unit, %s, e.g. \"10s\"", l.allowed())
		if n.kind == kScalar && n.typ == tInt && n.num > 0 && n.num < 1e6 {
			hint = fmt.Sprintf("add a unit: \"%ss\" for seconds; use %s", n.raw, l.allowed())
		}
		d.typeError(path, n, l.what+" must be a duration", hint)
		return 0, false
	}
	if msg, hint := l.check(v, n.text); msg != "" {
		d.bad[path] = true
		d.r.errorAt(n.pos, path, hint, "%s", msg)
		return 0, false
	}
	return Duration(v), true
}

func (d *decoder) list(path string, n *node, what string) ([]*node, bool) {
	if n.kind == kNull {
		return nil, true
	}
	if n.kind != kSeq {
		d.typeError(path, n, what+" must be a list", "write it as [a, b] or as lines starting with '- '")
		return nil, false
	}
	return n.items, true
}

func (d *decoder) spec(root *node) *Spec {
	s := &Spec{Version: FormatVersion, Services: map[string]*Service{}}
	if root.kind == kNull {
		d.r.errorAt(root.pos, "", "start from examples/pipeline.yaml or docs/linkspec.md", "the spec is empty")
		return s
	}
	d.fields("", "the spec", root, []field{
		{"version", func(p string, v *node) {
			if n, ok := d.integer(p, v, versionLimit); ok {
				s.Version = n
			}
		}},
		{"services", func(p string, v *node) { d.services(s, p, v) }},
		{"links", func(p string, v *node) { d.links(s, p, v) }},
	})
	normalise(s)
	return s
}

func (d *decoder) services(s *Spec, path string, n *node) {
	if n.kind == kNull {
		return
	}
	if n.kind != kMap {
		d.typeError(path, n, "services must be a mapping from service name to its definition", "write `services:` then one indented `name:` per service")
		return
	}
	for i, k := range n.keys {
		name := k.text
		spath := join(path, name)
		if _, dup := s.Services[name]; dup {
			d.r.errorAt(k.pos, spath, fmt.Sprintf("rename one of them (the first is at line %d)", d.r.locs[spath].Line), "duplicate service name %q", name)
			continue
		}
		d.r.locs[spath] = k.pos
		svc := defaultService(name)
		s.Services[name] = svc
		d.service(svc, spath, n.vals[i])
	}
}

func defaultService(name string) *Service {
	return &Service{
		Name:            name,
		Instances:       DefaultInstances,
		CPUs:            DefaultCPUs,
		Mem:             DefaultMemMiB,
		KillGracePeriod: Duration(DefaultGracePeriod),
		Health:          Health{ReadyTimeout: Duration(DefaultReadyTimeout), LivenessTimeout: Duration(DefaultLivenessTimeout)},
		Backoff:         Backoff{Initial: Duration(DefaultBackoffInitial), Factor: DefaultBackoffFactor, Max: Duration(DefaultBackoffMax)},
		Gates:           map[string]Pattern{},
	}
}

func (d *decoder) service(svc *Service, path string, n *node) {
	what := fmt.Sprintf("service %q", svc.Name)
	hasCommand, hasImage := false, false
	ok := d.fields(path, what, n, []field{
		{"command", func(p string, v *node) {
			hasCommand = true
			if c, ok := d.str(p, v, "command"); ok {
				svc.Command = c
			}
		}},
		{"image", func(p string, v *node) {
			hasImage = true
			if c, ok := d.str(p, v, "image"); ok {
				svc.Image = c
			}
		}},
		{"force_pull", func(p string, v *node) { svc.ForcePull, _ = d.boolean(p, v, "force_pull") }},
		{"volumes", func(p string, v *node) {
			items, _ := d.list(p, v, "volumes")
			for i, it := range items {
				d.volume(svc, fmt.Sprintf("%s[%d]", p, i), it)
			}
		}},
		{"args", func(p string, v *node) {
			items, _ := d.list(p, v, "args")
			for i, it := range items {
				if a, ok := d.text(fmt.Sprintf("%s[%d]", p, i), it, "each argument"); ok {
					svc.Args = append(svc.Args, a)
				}
			}
		}},
		{"env", func(p string, v *node) {
			if v.kind == kNull {
				return
			}
			if v.kind != kMap {
				d.typeError(p, v, "env must be a mapping of NAME: value", "")
				return
			}
			svc.Env = map[string]string{}
			for i, k := range v.keys {
				epath := join(p, k.text)
				if _, dup := svc.Env[k.text]; dup {
					d.r.errorAt(k.pos, epath, "keep one", "duplicate environment variable %q", k.text)
					continue
				}
				d.r.locs[epath] = k.pos
				if val, ok := d.text(epath, v.vals[i], "an environment value"); ok {
					svc.Env[k.text] = val
				}
			}
		}},
		{"uris", func(p string, v *node) {
			items, _ := d.list(p, v, "uris")
			for i, it := range items {
				d.uri(svc, fmt.Sprintf("%s[%d]", p, i), it)
			}
		}},
		{"instances", func(p string, v *node) {
			if x, ok := d.integer(p, v, instancesLimit); ok {
				svc.Instances = x
			}
		}},
		{"cpus", func(p string, v *node) {
			if x, ok := d.number(p, v, cpusLimit); ok {
				svc.CPUs = x
			}
		}},
		{"mem", func(p string, v *node) {
			if x, ok := d.number(p, v, memLimit); ok {
				svc.Mem = x
			}
		}},
		{"disk", func(p string, v *node) {
			if x, ok := d.number(p, v, diskLimit); ok {
				svc.Disk = x
			}
		}},
		{"constraints", func(p string, v *node) { svc.Constraints = d.constraints(p, v) }},
		{"kill_grace_period", func(p string, v *node) {
			if x, ok := d.duration(p, v, gracePeriodLimit); ok {
				svc.KillGracePeriod = x
			}
		}},
		{"health", func(p string, v *node) {
			d.fields(p, what+" health", v, []field{
				{"ready_timeout", func(p string, v *node) {
					if x, ok := d.duration(p, v, readyTimeoutLimit); ok {
						svc.Health.ReadyTimeout = x
					}
				}},
				{"liveness_timeout", func(p string, v *node) {
					if x, ok := d.duration(p, v, livenessLimit); ok {
						svc.Health.LivenessTimeout = x
					}
				}},
			})
		}},
		{"backoff", func(p string, v *node) {
			d.fields(p, what+" backoff", v, []field{
				{"initial", func(p string, v *node) {
					if x, ok := d.duration(p, v, backoffInitialLimit); ok {
						svc.Backoff.Initial = x
					}
				}},
				{"factor", func(p string, v *node) {
					if x, ok := d.number(p, v, factorLimit); ok {
						svc.Backoff.Factor = x
					}
				}},
				{"max", func(p string, v *node) {
					if x, ok := d.duration(p, v, backoffMaxLimit); ok {
						svc.Backoff.Max = x
					}
				}},
			})
		}},
		{"gates", func(p string, v *node) { d.gates(svc, p, v) }},
	})
	if !ok {
		d.bad[join(path, "command")] = true
	}
	if ok && !hasCommand && !hasImage {
		d.bad[join(path, "command")] = true
		d.r.errorAt(d.r.locs[path], join(path, "command"), "add `command: ./my-service` (the executable to run), or an `image:` whose entrypoint runs it", "service %q has no command", svc.Name)
	}
}

func (d *decoder) volume(svc *Service, path string, n *node) {
	v := Volume{Mode: ReadOnly}
	if !d.fields(path, "a volume", n, []field{
		{"host_path", func(p string, x *node) { v.HostPath, _ = d.str(p, x, "host_path") }},
		{"container_path", func(p string, x *node) { v.ContainerPath, _ = d.str(p, x, "container_path") }},
		{"mode", func(p string, x *node) {
			if m, ok := d.str(p, x, "mode"); ok {
				v.Mode = VolumeMode(m)
			}
		}},
	}) {
		d.bad[path] = true
		svc.Volumes = append(svc.Volumes, v)
		return
	}
	d.r.locs[path] = n.pos
	for _, f := range []string{"host_path", "container_path"} {
		if n.lookup(f) == nil {
			d.bad[path] = true
			d.r.errorAt(n.pos, path, "write volumes as `- {host_path: /var/lib/x, container_path: /data, mode: ro}`", "a volume has no %s", f)
		}
	}
	// Appended even when bad, so that indexes match the file.
	svc.Volumes = append(svc.Volumes, v)
}

func (d *decoder) uri(svc *Service, path string, n *node) {
	u := URI{Extract: true}
	switch {
	case n.kind == kScalar && n.typ == tStr:
		u.Value = n.text
	case n.kind == kMap:
		d.fields(path, "a uri", n, []field{
			{"uri", func(p string, v *node) {
				if s, ok := d.str(p, v, "uri"); ok {
					u.Value = s
				}
			}},
			{"executable", func(p string, v *node) { u.Executable, _ = d.boolean(p, v, "executable") }},
			{"extract", func(p string, v *node) {
				if b, ok := d.boolean(p, v, "extract"); ok {
					u.Extract = b
				}
			}},
			{"output_file", func(p string, v *node) { u.OutputFile, _ = d.str(p, v, "output_file") }},
		})
		if n.lookup("uri") == nil {
			d.bad[path] = true
			d.r.errorAt(n.pos, path, "add `uri: https://…`", "a uri entry has no uri")
			return
		}
	default:
		d.typeError(path, n, "each uri must be a string or a mapping with uri, executable, extract, output_file", "")
		return
	}
	d.r.locs[path] = n.pos
	svc.URIs = append(svc.URIs, u)
}

// normalise makes equal specs equal values: empty collections are nil.
func normalise(s *Spec) {
	for _, svc := range s.Services {
		if len(svc.Env) == 0 {
			svc.Env = nil
		}
		if len(svc.Args) == 0 {
			svc.Args = nil
		}
		if len(svc.URIs) == 0 {
			svc.URIs = nil
		}
		if len(svc.Volumes) == 0 {
			svc.Volumes = nil
		}
		if len(svc.Constraints) == 0 {
			svc.Constraints = nil
		}
	}
}

func (d *decoder) gates(svc *Service, path string, n *node) {
	if n.kind == kNull {
		return
	}
	if n.kind != kMap {
		d.typeError(path, n, "gates must be a mapping from gate name to pattern", "write e.g. `plaintext: push`")
		return
	}
	for i, k := range n.keys {
		gpath := join(path, k.text)
		if _, dup := svc.Gates[k.text]; dup {
			d.r.errorAt(k.pos, gpath, fmt.Sprintf("rename one of them (the first is at line %d)", d.r.locs[gpath].Line), "duplicate gate name %q in service %q", k.text, svc.Name)
			continue
		}
		d.r.locs[gpath] = k.pos
		v := n.vals[i]
		if v.kind != kScalar || v.typ != tStr {
			d.typeError(gpath, v, "a gate's value must be its pattern", "write one of "+patternList())
			svc.Gates[k.text] = ""
			continue
		}
		svc.Gates[k.text] = Pattern(v.text)
		d.r.locs[gpath+"="] = v.pos
	}
}

func (d *decoder) links(s *Spec, path string, n *node) {
	items, ok := d.list(path, n, "links")
	if !ok {
		return
	}
	for i, it := range items {
		lpath := fmt.Sprintf("%s[%d]", path, i)
		d.r.locs[lpath] = it.pos
		var l Link
		okFrom, okTo := false, false
		if !d.fields(lpath, "a link", it, []field{
			{"from", func(p string, v *node) { l.From, okFrom = d.gateRef(p, v) }},
			{"to", func(p string, v *node) { l.To, okTo = d.gateRef(p, v) }},
		}) {
			continue
		}
		for _, f := range []struct {
			name string
			ok   bool
		}{{"from", okFrom}, {"to", okTo}} {
			if it.lookup(f.name) == nil {
				d.r.errorAt(it.pos, join(lpath, f.name), "write links as `- from: service.gate` and `to: service.gate`", "a link has no %q", f.name)
			}
		}
		if okFrom && okTo {
			s.Links = append(s.Links, l)
		} else {
			// Keep the index aligned with the file so later problems point at
			// the right entry; a zero link is skipped by validation.
			s.Links = append(s.Links, Link{})
			d.bad[lpath] = true
		}
	}
}

func (d *decoder) gateRef(path string, n *node) (GateRef, bool) {
	s, ok := d.str(path, n, "a link end")
	if !ok {
		return GateRef{}, false
	}
	ref, err := ParseGateRef(s)
	if err != nil {
		d.bad[path] = true
		d.r.errorAt(n.pos, path, "write service.gate, e.g. encryptor.plaintext", "link end %q is not service.gate", s)
		return GateRef{}, false
	}
	return ref, true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func patternList() string {
	ps := make([]string, len(Patterns))
	for i, p := range Patterns {
		ps[i] = string(p)
	}
	return strings.Join(ps, ", ")
}

// synonyms maps names people bring from Marathon app definitions and other
// tools to ours.
var synonyms = map[string]string{
	"cmd": "command", "arguments": "args", "environment": "env", "fetch": "uris",
	"cpu": "cpus", "memory": "mem", "replicas": "instances", "count": "instances",
	"taskkillgraceperiodseconds": "kill_grace_period", "grace_period": "kill_grace_period",
	"backoffseconds": "backoff", "backofffactor": "backoff", "maxlaunchdelayseconds": "backoff",
	"source": "from", "target": "to", "dest": "to", "destination": "to",
	"container": "image", "docker": "image", "forcepullimage": "force_pull", "pull": "force_pull",
	"hostpath": "host_path", "containerpath": "container_path", "host": "host_path", "target_path": "container_path",
}

// suggest proposes the closest known name, or lists them all.
func suggest(got string, known []string) string {
	if s, ok := synonyms[strings.ToLower(got)]; ok {
		for _, k := range known {
			if k == s {
				return fmt.Sprintf("did you mean %q?", s)
			}
		}
	}
	best, bestD := "", 3
	for _, k := range known {
		if dd := editDistance(strings.ToLower(got), k); dd < bestD {
			best, bestD = k, dd
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return "known fields are: " + strings.Join(sorted, ", ")
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortStrings(s []string) { sort.Strings(s) }
