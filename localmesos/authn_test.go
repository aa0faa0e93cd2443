package localmesos

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func basic(principal, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(principal+":"+secret))
}

func TestParseCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // principals
		err      string
	}{
		{"json", `{"credentials": [{"principal": "tiltai", "secret": "s3cret-1"}, {"principal": "ops", "secret": "s3cret-2"}]}`, []string{"ops", "tiltai"}, ""},
		{"text", "tiltai s3cret-1\n\n  ops   s3cret-2  \n", []string{"ops", "tiltai"}, ""},
		{"empty", "  \n", nil, "no credentials"},
		{"json no secret", `{"credentials": [{"principal": "tiltai"}]}`, nil, `credential 1: needs both "principal" and "secret"`},
		{"json empty secret", `{"credentials": [{"principal": "tiltai", "secret": ""}]}`, nil, `principal "tiltai" has an empty secret`},
		{"duplicate", "a s3cret-1\na s3cret-2\n", nil, `line 2: principal "a" is listed twice`},
		{"text three fields", "a s3cret-1 extra\n", nil, "line 1: want \"principal secret\", got 3 fields"},
		{"json wrong type", `{"credentials": [{"principal": "a", "secret": 12345678}]}`, nil, `field "credentials.secret" must be a string`},
		{"json syntax", `{"credentials": [{"principal": "a", "secret": "s3cret-1"`, nil, "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCredentials([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				for _, s := range []string{"s3cret", "12345678"} {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("the error shows a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Principals(); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("principals %v, want %v", got, tc.want)
			}
			if s := fmt.Sprint(c) + fmt.Sprintf("%v %+v", c, c); strings.Contains(s, "s3cret") {
				t.Fatalf("printing the credentials shows a secret: %s", s)
			}
		})
	}
}

func TestLoadCredentials(t *testing.T) {
	p := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(p, []byte(`{"credentials":[{"principal":"p","secret":"s"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, "file://" + p} {
		c, err := LoadCredentials(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(basic("p", "s")); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if _, err := LoadCredentials(p + ".missing"); err == nil {
		t.Fatal("a missing file loaded")
	}
}

func TestCredentialsAuthenticate(t *testing.T) {
	c, err := ParseCredentials([]byte("tiltai s3cret\nops other\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.Authenticate(basic("tiltai", "s3cret")); err != nil || p != "tiltai" {
		t.Fatalf("right credentials: %q, %v", p, err)
	}
	for _, bad := range []string{
		"", "Basic", "Basic !!!", "Bearer x", basic("tiltai", "wrong"), basic("tiltai", ""), basic("nobody", "s3cret"),
		basic("ops", "s3cret"), // another principal's secret
		"Basic " + base64.StdEncoding.EncodeToString([]byte("tiltai")),
	} {
		if p, err := c.Authenticate(bad); !errors.Is(err, ErrBadCredentials) || p != "" {
			t.Errorf("Authenticate(%q) = %q, %v; want ErrBadCredentials", bad, p, err)
		}
	}
}

func TestJWTExecutorAuth(t *testing.T) {
	a, err := NewJWTExecutorAuth([]byte("key-1"), true)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Token("fw-1", "ex-1")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	var header, claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		t.Fatalf("token parts do not decode: %q", tok)
	}
	if header["alg"] != "HS256" || header["typ"] != "JWT" || claims["fid"] != "fw-1" || claims["eid"] != "ex-1" {
		t.Fatalf("header %v, claims %v", header, claims)
	}
	if err := a.Authenticate("Bearer "+tok, "fw-1", "ex-1"); err != nil {
		t.Fatalf("own token refused: %v", err)
	}
	if err := a.Authenticate("Bearer "+tok, "", ""); err != nil {
		t.Fatalf("own token refused for an unparsed call: %v", err)
	}
	other, _ := NewJWTExecutorAuth([]byte("key-2"), true)
	forged, _ := other.Token("fw-1", "ex-1")
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"eid":"ex-2","fid":"fw-1"}`)) + "." + parts[2]
	expClaims := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"eid":"ex-1","fid":"fw-1","exp":%d}`, time.Now().Add(-time.Minute).Unix())))
	expired := parts[0] + "." + expClaims + "." + a.sign(parts[0]+"."+expClaims)
	for name, c := range map[string]struct{ auth, fw, ex string }{
		"no header":       {"", "fw-1", "ex-1"},
		"no bearer":       {tok, "fw-1", "ex-1"},
		"other executor":  {"Bearer " + tok, "fw-1", "ex-2"},
		"other framework": {"Bearer " + tok, "fw-2", "ex-1"},
		"other key":       {"Bearer " + forged, "fw-1", "ex-1"},
		"alg none":        {"Bearer " + unsigned, "fw-1", "ex-1"},
		"tampered claims": {"Bearer " + tampered, "fw-1", "ex-2"},
		"expired":         {"Bearer " + expired, "fw-1", "ex-1"},
		"garbage":         {"Bearer a.b.c", "fw-1", "ex-1"},
	} {
		if err := a.Authenticate(c.auth, c.fw, c.ex); !errors.Is(err, ErrBadExecutorToken) {
			t.Errorf("%s: %v, want ErrBadExecutorToken", name, err)
		}
	}
	lax, _ := NewJWTExecutorAuth([]byte("key-1"), false)
	if err := lax.Authenticate("", "fw-1", "ex-1"); err != nil {
		t.Fatalf("a key without --authenticate_http_executors refused a call: %v", err)
	}
	if _, err := NewJWTExecutorAuth(nil, true); err == nil {
		t.Fatal("an empty key was accepted")
	}
}

func TestAuthFlags(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	key := filepath.Join(dir, "key")
	os.WriteFile(creds, []byte(`{"credentials":[{"principal":"p","secret":"s"}]}`), 0o600)
	os.WriteFile(key, []byte("k"), 0o600)

	var cfg Config
	err := AuthFlags{AuthenticateFrameworks: true, AuthenticateHTTPExecutors: true}.Apply(&cfg)
	if err == nil || !strings.Contains(err.Error(), "--authenticate_frameworks needs --credentials") || !strings.Contains(err.Error(), "--authenticate_http_executors needs --executor_secret_key") {
		t.Fatalf("every problem should be listed: %v", err)
	}
	err = AuthFlags{Credentials: creds + ".x", ExecutorSecretKey: filepath.Join(dir, "empty")}.Apply(&cfg)
	if err == nil || !strings.Contains(err.Error(), "--credentials") || !strings.Contains(err.Error(), "--executor_secret_key") {
		t.Fatalf("every problem should be listed: %v", err)
	}

	cfg = Config{}
	if err := (AuthFlags{AuthenticateFrameworks: true, Credentials: creds, AuthenticateHTTPExecutors: true, ExecutorSecretKey: key}).Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.SchedulerAuth == nil || cfg.ExecutorAuth == nil {
		t.Fatalf("auth not set: %+v %+v", cfg.SchedulerAuth, cfg.ExecutorAuth)
	}
	if cfg.ExecutorAuth.Authenticate("", "f", "e") == nil {
		t.Fatal("executor tokens are not required")
	}

	// As Mesos: credentials alone authenticate nobody; a key alone hands
	// out tokens without checking them.
	cfg = Config{}
	if err := (AuthFlags{Credentials: creds, ExecutorSecretKey: key}).Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.SchedulerAuth != nil || cfg.ExecutorAuth == nil || cfg.ExecutorAuth.Authenticate("", "f", "e") != nil {
		t.Fatalf("credentials and key without the authenticate flags: %+v %+v", cfg.SchedulerAuth, cfg.ExecutorAuth)
	}
}

// The master with credentials: a scheduler without them or with a wrong
// secret gets 401 with Mesos' challenge; with them it subscribes.
func TestFrameworkAuthentication(t *testing.T) {
	creds, err := ParseCredentials([]byte(`{"credentials":[{"principal":"tiltai","secret":"s3cret"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.SchedulerAuth = creds
	c := startCluster(t, cfg)
	body := []byte(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"auth","principal":"tiltai"}}}`)
	for _, auth := range []string{"", basic("tiltai", "wrong"), basic("other", "s3cret")} {
		resp := post(t, c.SchedulerURL(), map[string]string{"Content-Type": "application/json", "Authorization": auth}, body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic realm=") {
			t.Fatalf("SUBSCRIBE with %q: %s (WWW-Authenticate %q), want 401 with a Basic challenge", auth, resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp := post(t, c.SchedulerURL(), map[string]string{"Content-Type": "application/json", "Authorization": basic("tiltai", "s3cret")}, body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SUBSCRIBE with the right credentials: %s", resp.Status)
	}
	// /state names the principal, never the secret.
	st, err := http.Get(c.MasterURL() + "/state")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(st.Body)
	st.Body.Close()
	if strings.Contains(string(b), "s3cret") || !strings.Contains(string(b), `"principal":"tiltai"`) {
		t.Fatalf("/state: principal shown %v, secret shown %v", strings.Contains(string(b), `"principal":"tiltai"`), strings.Contains(string(b), "s3cret"))
	}
}

// The agent with a secret key: the command executor gets its token and
// runs its task; an executor call without it, with another executor's, or
// with a forged one is answered 401.
func TestExecutorJWTAuthentication(t *testing.T) {
	auth, err := NewJWTExecutorAuth([]byte("agent-key"), true)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.ExecutorAuth = auth
	c := startCluster(t, cfg)
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"jwt"}}}`)
	o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"a","task_id":{"value":"a"},"agent_id":{"value":%q},"command":{"value":"sleep 30"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}]}]}}]}}`,
		s.fwID, o.ID.Value, o.AgentID.Value))
	for {
		e := s.next(scheduler.Event_UPDATE)
		s.ack(e)
		st := e.ev.Update.Status.GetState()
		if st == mesos.TASK_RUNNING {
			break
		}
		if st != mesos.TASK_STARTING {
			t.Fatalf("task a: %s (%s), want it running: the command executor's token was refused?", st, e.ev.Update.Status.GetMessage())
		}
	}
	call := func(authorization string) int {
		body := fmt.Sprintf(`{"type":"MESSAGE","executor_id":{"value":"a"},"framework_id":{"value":%q},"message":{"data":""}}`, s.fwID)
		resp := post(t, "http://"+c.Agents()[0].Endpoint+"/api/v1/executor", map[string]string{"Content-Type": "application/json", "Authorization": authorization}, []byte(body))
		resp.Body.Close()
		return resp.StatusCode
	}
	other, _ := auth.Token(s.fwID, "b")
	forger, _ := NewJWTExecutorAuth([]byte("guessed-key"), true)
	forged, _ := forger.Token(s.fwID, "a")
	for name, h := range map[string]string{"no token": "", "another executor's": "Bearer " + other, "forged": "Bearer " + forged} {
		if code := call(h); code != http.StatusUnauthorized {
			t.Errorf("executor call with %s token: %d, want 401", name, code)
		}
	}
	own, _ := auth.Token(s.fwID, "a")
	if code := call("Bearer " + own); code != http.StatusAccepted {
		t.Fatalf("executor call with its own token: %d, want 202", code)
	}
}
