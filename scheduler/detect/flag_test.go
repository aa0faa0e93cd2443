package detect

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFlag(t *testing.T) {
	tests := []struct {
		in   string
		kind Kind
		want string // Source.String()
	}{
		{"127.0.0.1:5050", Static, "http://127.0.0.1:5050"},
		{"mesos-master", Static, "http://mesos-master:5050"},
		{"[::1]:5051", Static, "http://[::1]:5051"},
		{"http://m1:5050", Static, "http://m1:5050"},
		{"https://m1.example.com/mesos/", Static, "https://m1.example.com:5050/mesos"},
		{"http://10.0.0.1:80/a/b", Static, "http://10.0.0.1:80/a/b"},
		{"zk://zk1:2181,zk2:2181/mesos", ZooKeeper, "zk://zk1:2181,zk2:2181/mesos"},
		{"zk://u:secret@zk1/mesos", ZooKeeper, "zk://u:***@zk1:2181/mesos"},
		{"file:///etc/mesos/master", File, "file:///etc/mesos/master"},
	}
	for _, tt := range tests {
		src, err := ParseFlag(tt.in)
		if err != nil {
			t.Errorf("ParseFlag(%q): %v", tt.in, err)
			continue
		}
		if src.Kind != tt.kind || src.String() != tt.want {
			t.Errorf("ParseFlag(%q) = kind %d %q, want kind %d %q", tt.in, src.Kind, src.String(), tt.kind, tt.want)
		}
	}
}

func TestParseFlagErrors(t *testing.T) {
	tests := []struct {
		in     string
		column int
		msg    string
	}{
		{"", 1, "set --master or MESOS_MASTER"},
		{"m:0", 3, `port "0"`},
		{"m:", 2, "empty port"},
		{"::1:5050", 1, "brackets"},
		{"a..b:1", 3, "empty label"},
		{"m 1", 2, "byte 0x20"},
		{"ftp://m/x", 1, `scheme "ftp"`},
		{"http://", 8, "no host"},
		{"http://u:p@m:5050", 8, "--mesos_authentication_principal"},
		{"http://m:5050?x", 14, "query"},
		{"http://m:5050/a//b", 16, "empty segment"},
		{"http://m:x", 10, `port "x"`},
		{"zk://zk1:2181", 14, "missing the path"},
		{"zk://u:pw@zk1:x/mesos", 15, `port "x"`},
		{"file://etc/mesos", 8, "absolute path"},
		{"file://", 8, "missing the file path"},
	}
	for _, tt := range tests {
		_, err := ParseFlag(tt.in)
		var fe *FlagError
		if !errors.As(err, &fe) {
			t.Errorf("ParseFlag(%q) = %v, want a *FlagError", tt.in, err)
			continue
		}
		if fe.Column != tt.column || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseFlag(%q):\n got column %d: %v\nwant column %d and %q", tt.in, fe.Column, err, tt.column, tt.msg)
		}
		if strings.Contains(err.Error(), "pw@") {
			t.Errorf("ParseFlag(%q) shows the password: %v", tt.in, err)
		}
	}
}

func TestParseMasterInfo(t *testing.T) {
	// master_info as Mesos 1.11 sent it (01-subscribe-json.json), which is
	// also what the master writes into its json.info_ node.
	const recorded = `{"id":"5a1b2c3d-0000-4000-8000-000000000001","ip":16777343,"port":5150,
		"pid":"master@127.0.0.1:5150","hostname":"localhost","version":"1.11.0",
		"address":{"hostname":"localhost","ip":"127.0.0.1","port":5150},
		"capabilities":[{"type":"AGENT_UPDATE"},{"type":"AGENT_DRAINING"},{}]}`
	tests := []struct {
		name, data, url, err string
	}{
		{"recorded", recorded, "http://127.0.0.1:5150", ""},
		{"packed ip only", `{"ip":16777343,"port":5050}`, "http://127.0.0.1:5050", ""},
		{"packed 10.1.2.3", `{"ip":50462986,"port":5050}`, "http://10.1.2.3:5050", ""},
		{"hostname only", `{"hostname":"m1","port":5050}`, "http://m1:5050", ""},
		{"address port wins", `{"port":1,"address":{"ip":"10.0.0.9","port":5050}}`, "http://10.0.0.9:5050", ""},
		{"no host", `{"port":5050}`, "", "no address"},
		{"no port", `{"hostname":"m"}`, "", "no valid port"},
		{"not json", `master@1.2.3.4:5050`, "", "not MasterInfo JSON"},
	}
	for _, tt := range tests {
		m, err := ParseMasterInfo([]byte(tt.data))
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err == "" && m.URL.String() != tt.url:
			t.Errorf("%s: URL = %s, want %s", tt.name, m.URL, tt.url)
		}
	}
	m, _ := ParseMasterInfo([]byte(recorded))
	if m.ID == "" || m.Version != "1.11.0" || m.Hostname != "localhost" ||
		m.SchedulerEndpoint() != "http://127.0.0.1:5150/api/v1/scheduler" {
		t.Errorf("recorded MasterInfo = %+v", m)
	}
}

func TestLowestJSONInfoIgnoresLegacyAndOtherNodes(t *testing.T) {
	name, ok := lowestJSONInfo([]string{"log_replicas", "info_0000000001", "json.info_0000000007", "json.info_0000000003", "json.info_x"})
	if !ok || name != "json.info_0000000003" {
		t.Fatalf("lowestJSONInfo = %q, %v", name, ok)
	}
	if _, ok := lowestJSONInfo([]string{"info_0000000001", "log_replicas"}); ok {
		t.Fatal("a legacy info_ node was taken for a leader")
	}
}

func FuzzParseFlag(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5050", "http://m:5050/p", "zk://a:1,b/mesos", "file:///x", "[::1]", "https://[fe80::1]:1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := ParseFlag(s)
		if err != nil {
			var fe *FlagError
			if !errors.As(err, &fe) || fe.Column < 1 || fe.Column > len(s)+1 || fe.Msg == "" {
				t.Fatalf("ParseFlag(%q): error without a location: %v", s, err)
			}
			return
		}
		switch src.Kind {
		case Static:
			again, err := ParseFlag(src.URL.String())
			if err != nil || again.String() != src.String() {
				t.Fatalf("ParseFlag(%q) = %s, which parses to %v, %v", s, src, again, err)
			}
		case ZooKeeper:
			if len(src.ZK.Servers) == 0 || src.ZK.Path == "" {
				t.Fatalf("ParseFlag(%q) = %+v", s, src)
			}
		case File:
			if !strings.HasPrefix(src.Path, "/") {
				t.Fatalf("ParseFlag(%q): relative file %q", s, src.Path)
			}
		default:
			t.Fatalf("ParseFlag(%q): kind %d", s, src.Kind)
		}
	})
}
