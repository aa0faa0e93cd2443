package api

import (
	"bufio"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// Metrics collects a snapshot; Mesos writes every value as a double,
// keys sorted.
type Metrics map[string]float64

// JSON renders the snapshot with extra values added, keys sorted.
func (s Metrics) JSON(extra ojson.Object) []byte {
	for _, kv := range extra {
		switch v := kv.V.(type) {
		case ojson.Double:
			s[kv.K] = float64(v)
		case float64:
			s[kv.K] = v
		}
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(ojson.Object, len(keys))
	for i, k := range keys {
		out[i] = ojson.KV{K: k, V: ojson.Double(s[k])}
	}
	return ojson.Marshal(out)
}

// timer adds a metrics::Timer with its statistics, all 0: localmesos does
// not time its allocator or registry.
func (s Metrics) Timer(name string) {
	s[name] = 0
	for _, p := range []string{"count", "max", "min", "p50", "p90", "p95", "p99", "p999", "p9999"} {
		s[name+"/"+p] = 0
	}
}

// Boolf is 1 for true and 0 for false, as Mesos' gauges.
func Boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Percent is used/total as a fraction, 0 when total is 0.
func Percent(used, total float64) float64 {
	if total == 0 {
		return 0
	}
	return used / total
}

// resourceGauges adds <prefix>/{cpus,mem,disk,gpus}_{total,used,percent}
// and their revocable_ forms (always 0: no revocable resources).
func (s Metrics) ResourceGauges(prefix string, total, used res.Resources) {
	for _, n := range []string{"cpus", "gpus", "mem", "disk"} {
		t, u := total.Scalar(n), used.Scalar(n)
		s[prefix+n+"_total"], s[prefix+n+"_used"], s[prefix+n+"_percent"] = t, u, Percent(u, t)
		for _, k := range []string{"_revocable_total", "_revocable_used", "_revocable_percent"} {
			s[prefix+n+k] = 0
		}
	}
}

// ActiveStates and terminalStates name Mesos' per-state task metrics;
// ActiveStates are the non-terminal task states.
var ActiveStates = []mesos.TaskState{mesos.TASK_STAGING, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_UNREACHABLE, mesos.TASK_UNKNOWN}

// TerminalStates are the terminal task states, in Mesos' order.
var TerminalStates = []mesos.TaskState{mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_LOST, mesos.TASK_ERROR, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR}

// StateName is "running" for TASK_RUNNING.
func StateName(s mesos.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_"))
}

// SystemSnapshot adds system/…, read from the host as Mesos' system
// metrics do (/proc/loadavg, /proc/meminfo); 0 where they cannot be read.
func SystemSnapshot(s Metrics) {
	s["system/cpus_total"] = float64(runtime.NumCPU())
	s["system/load_1min"], s["system/load_5min"], s["system/load_15min"] = 0, 0, 0
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		for i, k := range []string{"system/load_1min", "system/load_5min", "system/load_15min"} {
			if i < len(f) {
				s[k], _ = strconv.ParseFloat(f[i], 64)
			}
		}
	}
	s["system/mem_total_bytes"], s["system/mem_free_bytes"] = 0, 0
	if fh, err := os.Open("/proc/meminfo"); err == nil {
		defer fh.Close()
		mem := map[string]float64{}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 {
				v, _ := strconv.ParseFloat(f[1], 64)
				mem[strings.TrimSuffix(f[0], ":")] = v * 1024
			}
		}
		s["system/mem_total_bytes"] = mem["MemTotal"]
		free, ok := mem["MemAvailable"]
		if !ok {
			free = mem["MemFree"]
		}
		s["system/mem_free_bytes"] = free
	}
}
