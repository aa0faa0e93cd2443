package linkspec

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/tiltai/tiltai/internal/linkvocab"
)

var (
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const dnsHint = "use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"

// reservedEnvPrefixes are set by Mesos and the Tiltai executor; a spec that
// set them would confuse the service about its own wiring.
var reservedEnvPrefixes = []string{"TILTAI_", "MESOS_", "LIBPROCESS_"}

// Validate checks a spec built or changed in code (e.g. scaled through the
// API). Problems are located when the spec came from Parse.
func (s *Spec) Validate() Problems { return s.ValidateWith(ParseOptions{}) }

// ValidateWith is Validate with options (e.g. a scheduler's task limit).
func (s *Spec) ValidateWith(opt ParseOptions) Problems {
	r := &reporter{file: s.file, locs: s.locs, opt: opt}
	if r.locs == nil {
		r.locs = map[string]Pos{}
	}
	validate(r, s, nil)
	r.probs.sort()
	return r.probs
}

// validate reports every semantic problem: names, ranges, references and
// pattern compatibility. bad marks fields the decoder already reported.
func validate(r *reporter, s *Spec, bad map[string]bool) {
	if bad == nil {
		bad = map[string]bool{}
	}
	checkNum(r, bad, "version", versionLimit, float64(s.Version))
	if len(s.Services) > MaxServices {
		r.errorf("services", "split the system into several specs", "%d services; at most %d are allowed", len(s.Services), MaxServices)
	}
	for _, name := range s.ServiceNames() {
		validateService(r, s.Services[name], "services."+name, bad)
	}
	total, largest := 0, ""
	for _, name := range s.ServiceNames() {
		n := s.Services[name].Instances
		if n > 0 && n <= MaxInstances {
			total += n
			if largest == "" || n > s.Services[largest].Instances {
				largest = name
			}
		}
	}
	if max := r.opt.maxTasks(); total > max {
		// Located where lowering it helps most: the largest service's
		// instances (or its name, when it leaves them at the default).
		pos := r.locs["services"]
		for _, p := range []string{"services." + largest, "services." + largest + ".instances"} {
			if r.locs[p].Line > 0 {
				pos = r.locs[p]
			}
		}
		r.errorAt(pos, "services", fmt.Sprintf("lower the instances (the largest is %s with %d), or run the scheduler with a larger --max_tasks where it has the memory", largest, s.Services[largest].Instances),
			"the spec asks for %d tasks in all; at most %d are allowed", total, max)
	}
	if len(s.Links) > MaxLinks {
		r.errorf("links", "fewer, wider links (one link reaches every instance)", "%d links; at most %d are allowed", len(s.Links), MaxLinks)
	}
	validateLinks(r, s, bad)
}

func validateService(r *reporter, svc *Service, p string, bad map[string]bool) {
	if !linkvocab.IsDNSLabel(svc.Name) {
		r.errorf(p, dnsHint, "service name %q is not a DNS label", svc.Name)
	}
	cmd := join(p, "command")
	switch {
	case bad[cmd]:
	case svc.Command == "" && svc.Image != "" && r.opt.ImageNeedsCommand != "" && r.opt.NoImages == "":
		r.errorf(join(p, "image"), "name the executable in the image, e.g. `command: /usr/local/bin/"+svc.Name+"`",
			"service %q has an image but no command: %s", svc.Name, r.opt.ImageNeedsCommand)
	case svc.Command == "" && (svc.Image != "" || r.locs[join(p, "image")].Line > 0):
		// The image's entrypoint runs (or the image is reported).
	case strings.TrimSpace(svc.Command) == "":
		r.errorf(cmd, "name the executable to run, e.g. `command: ./feeder`", "service %q has an empty command", svc.Name)
	case len(svc.Command) > maxCommandBytes:
		r.errorf(cmd, "put long scripts in a file fetched through uris", "command is longer than %d bytes", maxCommandBytes)
	}
	for k := range svc.Env {
		ep := join(join(p, "env"), k)
		if !envName.MatchString(k) {
			r.errorf(ep, "use letters, digits and '_', not starting with a digit", "environment variable name %q is not valid", k)
		}
		for _, pre := range reservedEnvPrefixes {
			if strings.HasPrefix(k, pre) {
				r.errorf(ep, "rename it; Mesos and the Tiltai executor set "+pre+"* themselves", "environment variable %q is reserved", k)
			}
		}
	}
	for i, u := range svc.URIs {
		up := fmt.Sprintf("%s.uris[%d]", p, i)
		if bad[up] {
			continue
		}
		if msg := checkURI(u); msg != "" {
			r.errorf(up, "use http(s)://, file:// or an absolute path the agent can read", "%s", msg)
		}
		if u.OutputFile != "" && (path.IsAbs(u.OutputFile) || strings.Contains(u.OutputFile, "..")) {
			r.errorf(up, "give a file name relative to the sandbox", "output_file %q leaves the sandbox", u.OutputFile)
		}
	}
	validateImage(r, svc, p, bad)
	checkNum(r, bad, join(p, "instances"), instancesLimit, float64(svc.Instances))
	checkNum(r, bad, join(p, "cpus"), cpusLimit, svc.CPUs)
	checkNum(r, bad, join(p, "mem"), memLimit, svc.Mem)
	checkNum(r, bad, join(p, "disk"), diskLimit, svc.Disk)
	checkDuration(r, bad, join(p, "kill_grace_period"), gracePeriodLimit, svc.KillGracePeriod)
	checkDuration(r, bad, join(p, "health.ready_timeout"), readyTimeoutLimit, svc.Health.ReadyTimeout)
	checkDuration(r, bad, join(p, "health.liveness_timeout"), livenessLimit, svc.Health.LivenessTimeout)
	checkDuration(r, bad, join(p, "backoff.initial"), backoffInitialLimit, svc.Backoff.Initial)
	checkDuration(r, bad, join(p, "backoff.max"), backoffMaxLimit, svc.Backoff.Max)
	checkNum(r, bad, join(p, "backoff.factor"), factorLimit, svc.Backoff.Factor)
	if svc.Backoff.Max < svc.Backoff.Initial && !bad[join(p, "backoff.max")] && !bad[join(p, "backoff.initial")] {
		r.errorf(join(p, "backoff.max"), "make max at least initial", "backoff max %s is less than initial %s", svc.Backoff.Max.Std(), svc.Backoff.Initial.Std())
	}
	if len(svc.Gates) > MaxGates {
		r.errorf(join(p, "gates"), "merge gates: one gate can carry many kinds of message", "%d gates; at most %d per service", len(svc.Gates), MaxGates)
	}
	for _, g := range sortedKeys(svc.Gates) {
		gp := join(join(p, "gates"), g)
		if !linkvocab.IsDNSLabel(g) {
			r.errorf(gp, dnsHint, "gate name %q is not a DNS label", g)
		}
		if pat := svc.Gates[g]; !bad[gp] && !pat.Valid() {
			pos := r.locs[gp+"="]
			if pos.Line == 0 {
				pos = r.locs[gp]
			}
			r.errorAt(pos, gp, "use one of "+patternList(), "gate %q has unknown pattern %q", g, pat)
		}
	}
}

const imageHint = "write [registry[:port]/]name[:tag][@sha256:<64 hex digits>], e.g. registry.example.com/team/encryptor:1.4"

// reservedMounts are container paths a volume may not be mounted at or
// below: Mesos mounts the sandbox there, and the kernel's file systems
// belong to the container runtime.
var reservedMounts = []string{"/mnt/mesos/sandbox", "/proc", "/sys", "/dev"}

// reservedFiles are set up by the container runtime; a volume over one
// would break the service's name resolution or its idea of its name.
var reservedFiles = []string{"/", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/mnt", "/mnt/mesos"}

func validateImage(r *reporter, svc *Service, p string, bad map[string]bool) {
	ip := join(p, "image")
	if svc.Image == "" {
		if _, written := r.locs[ip]; written {
			if !bad[ip] {
				r.errorf(ip, imageHint+"; or remove the field to run on the agent's own file system", "image is empty")
			}
			return // force_pull and volumes would only repeat it
		}
		if _, written := r.locs[join(p, "force_pull")]; written || svc.ForcePull {
			r.errorf(join(p, "force_pull"), "add an `image:`, or remove force_pull", "force_pull without an image; it says how to pull the image")
		}
		if _, written := r.locs[join(p, "volumes")]; written || len(svc.Volumes) > 0 {
			r.errorf(join(p, "volumes"), "add an `image:`, or remove volumes: without an image the service already sees the agent's file system", "volumes without an image; they are mounted into the image")
		}
		return
	}
	if !bad[ip] {
		if _, err := ParseImageRef(svc.Image); err != nil {
			r.errorf(ip, imageHint, "%v", err)
		} else if r.opt.NoImages != "" {
			r.errorf(ip, "run it without an image, or submit it to a scheduler that runs images", "service %q runs in an image, which this scheduler cannot do: %s", svc.Name, r.opt.NoImages)
		}
	}
	first := map[string]int{}
	for i, v := range svc.Volumes {
		vp := fmt.Sprintf("%s.volumes[%d]", p, i)
		if bad[vp] {
			continue
		}
		if msg := checkMountPath("host_path", v.HostPath); msg != "" {
			r.errorf(join(vp, "host_path"), "give an absolute path on the agent, without '..'", "%s", msg)
		}
		cp := join(vp, "container_path")
		if msg := checkMountPath("container_path", v.ContainerPath); msg != "" {
			r.errorf(cp, "give an absolute path inside the image, without '..'", "%s", msg)
		} else if what := reservedMount(v.ContainerPath); what != "" {
			r.errorf(cp, "mount it elsewhere, e.g. under /data", "container_path %q is reserved: %s", v.ContainerPath, what)
		} else if j, dup := first[v.ContainerPath]; dup {
			r.errorf(cp, fmt.Sprintf("keep one (the first is volumes[%d], line %d)", j, r.locs[fmt.Sprintf("%s.volumes[%d]", p, j)].Line),
				"two volumes are mounted at %q", v.ContainerPath)
		} else {
			first[v.ContainerPath] = i
		}
		if v.Mode != ReadOnly && v.Mode != ReadWrite {
			mp := join(vp, "mode")
			r.errorf(mp, "use ro (read-only, the default) or rw (read-write)", "volume mode %q is not ro or rw", v.Mode)
		}
	}
}

// checkMountPath says what is wrong with a volume's path, if anything.
func checkMountPath(field, p string) string {
	switch {
	case p == "":
		return field + " is empty"
	case !path.IsAbs(p):
		return fmt.Sprintf("%s %q is not absolute", field, p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Sprintf("%s %q has '..'", field, p)
	case path.Clean(p) != p:
		return fmt.Sprintf("%s %q is not clean; write %q", field, p, path.Clean(p))
	}
	return ""
}

// reservedMount says why a clean absolute container path is reserved, or "".
func reservedMount(p string) string {
	for _, m := range reservedMounts {
		if p == m || strings.HasPrefix(p, m+"/") {
			if m == "/mnt/mesos/sandbox" {
				return "Mesos mounts the task's sandbox at /mnt/mesos/sandbox"
			}
			return "the container runtime mounts " + m
		}
	}
	if slices.Contains(reservedFiles, p) {
		switch p {
		case "/":
			return "it is the image's root"
		case "/mnt", "/mnt/mesos":
			return "it would hide the sandbox, which Mesos mounts at /mnt/mesos/sandbox"
		}
		return "the container runtime writes " + p
	}
	return ""
}

func checkURI(u URI) string {
	v := strings.TrimSpace(u.Value)
	if v == "" {
		return "empty uri"
	}
	if strings.HasPrefix(v, "/") {
		return ""
	}
	pu, err := url.Parse(v)
	if err != nil {
		return fmt.Sprintf("uri %q does not parse: %v", v, err)
	}
	switch pu.Scheme {
	case "http", "https", "ftp", "ftps", "hdfs", "s3", "s3a", "s3n":
		if pu.Host == "" {
			return fmt.Sprintf("uri %q has no host", v)
		}
		return ""
	case "file":
		return ""
	case "":
		return fmt.Sprintf("uri %q is a relative path; the agent would not find it", v)
	}
	return fmt.Sprintf("uri %q has scheme %q, which the Mesos fetcher does not fetch", v, pu.Scheme)
}

func validateLinks(r *reporter, s *Spec, bad map[string]bool) {
	type use struct {
		link int
		from bool
	}
	used := map[GateRef][]use{}
	seen := map[Link]int{}
	for i, l := range s.Links {
		lp := fmt.Sprintf("links[%d]", i)
		if bad[lp] || l.From.Service == "" {
			continue
		}
		fromOK := checkEnd(r, s, join(lp, "from"), l.From)
		toOK := checkEnd(r, s, join(lp, "to"), l.To)
		if first, dup := seen[l]; dup {
			r.errorf(lp, fmt.Sprintf("remove it (the first is links[%d], line %d)", first, r.locs[fmt.Sprintf("links[%d]", first)].Line), "duplicate link %s", l)
			continue
		}
		seen[l] = i
		used[l.From] = append(used[l.From], use{i, true})
		used[l.To] = append(used[l.To], use{i, false})
		if !fromOK || !toOK {
			continue
		}
		fp := s.Services[l.From.Service].Gates[l.From.Gate]
		tp := s.Services[l.To.Service].Gates[l.To.Gate]
		if !fp.Valid() || !tp.Valid() {
			continue // already reported at the gate
		}
		switch {
		case !fp.Sends():
			r.errorf(join(lp, "from"), fmt.Sprintf("links start at a push, pub, req or pair gate; swap from and to if %s sends to %s", l.To, l.From),
				"%s is a %s gate, which receives; it cannot be a link's source", l.From, fp)
		case !tp.Receives():
			r.errorf(join(lp, "to"), "links end at a pull, sub, rep or pair gate",
				"%s is a %s gate, which sends; it cannot be a link's target", l.To, tp)
		case tp != fp.Peer():
			r.errorf(lp, fmt.Sprintf("a %s gate links to a %s gate; change one of the patterns", fp, fp.Peer()),
				"incompatible patterns: %s is %s but %s is %s", l.From, fp, l.To, tp)
		case fp == Pair:
			for _, ref := range []GateRef{l.From, l.To} {
				if n := s.Services[ref.Service].Instances; n > 1 {
					r.errorf(lp, fmt.Sprintf("scale %s to 1 instance, or use push/pull or req/rep to reach several", ref.Service),
						"pair links are one-to-one, but %s has %d instances", ref.Service, n)
				}
			}
		}
	}
	// One out-gate's peers are every instance of every service it links
	// to: bounded, so a table always fits a gate.
	reach := map[GateRef]int{}
	first := map[GateRef]int{}
	for i, l := range s.Links {
		if bad[fmt.Sprintf("links[%d]", i)] || s.Services[l.From.Service] == nil || s.Services[l.To.Service] == nil {
			continue
		}
		if n := s.Services[l.To.Service].Instances; n < 0 || n > MaxInstances {
			continue // reported at the service
		}
		if _, ok := first[l.From]; !ok {
			first[l.From] = i
		}
		reach[l.From] += s.Services[l.To.Service].Instances
	}
	for _, ref := range sortedRefs(reach) {
		if n := reach[ref]; n > MaxReach {
			r.errorf(fmt.Sprintf("links[%d]", first[ref]), fmt.Sprintf("scale the targets down or split the gate; at most %d", MaxReach),
				"out-gate %s reaches %d instances through its links", ref, n)
		}
	}
	// A pair gate belongs to exactly one link, on one side.
	for _, ref := range sortedRefs(used) {
		uses := used[ref]
		svc := s.Services[ref.Service]
		if svc == nil || svc.Gates[ref.Gate] != Pair || len(uses) < 2 {
			continue
		}
		lp := fmt.Sprintf("links[%d]", uses[1].link)
		r.errorf(lp, "give each pair link its own pair gate", "pair gate %s is used by %d links; a pair gate has exactly one peer", ref, len(uses))
	}
	// Declared but never linked: allowed (the spec may be mid-edit) but
	// probably a mistake — an unlinked out-gate blocks its sender forever.
	for _, name := range s.ServiceNames() {
		svc := s.Services[name]
		for _, g := range sortedKeys(svc.Gates) {
			ref := GateRef{name, g}
			if len(used[ref]) == 0 && svc.Gates[g].Valid() {
				what := "receives nothing"
				if svc.Gates[g].Sends() && svc.Gates[g] != Pair {
					what = "blocks every send (no peers)"
				}
				r.warnf(fmt.Sprintf("services.%s.gates.%s", name, g), "add a link for it or remove it",
					"gate %s is declared but no link uses it; it %s", ref, what)
			}
		}
	}
}

func checkEnd(r *reporter, s *Spec, p string, ref GateRef) bool {
	svc := s.Services[ref.Service]
	if svc == nil {
		r.errorf(p, suggestOr(ref.Service, s.ServiceNames(), "declare it under services"), "unknown service %q in link end %s", ref.Service, ref)
		return false
	}
	if _, ok := svc.Gates[ref.Gate]; !ok {
		r.errorf(p, suggestOr(ref.Gate, sortedKeys(svc.Gates), fmt.Sprintf("declare it under services.%s.gates", ref.Service)),
			"service %q has no gate %q", ref.Service, ref.Gate)
		return false
	}
	return true
}

func suggestOr(got string, known []string, fallback string) string {
	// A typo is a small share of the name: "plaintxt" for "plaintext", but
	// not "b" for "a".
	limit := min(2, len(got)/3)
	for _, k := range known {
		if editDistance(got, k) <= limit {
			return fmt.Sprintf("did you mean %q? otherwise %s", k, fallback)
		}
	}
	return fallback
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

func sortedRefs[V any](m map[GateRef]V) []GateRef {
	refs := make([]GateRef, 0, len(m))
	for k := range m {
		refs = append(refs, k)
	}
	sortRefs(refs)
	return refs
}
