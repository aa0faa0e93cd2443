package agentapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/tiltai/tiltai/internal/recordio"
)

// MaxEventBytes bounds one event record on the subscription stream.
const MaxEventBytes = 16 << 20

// Config configures a Client.
type Config struct {
	// Endpoint is the agent's host:port (MESOS_AGENT_ENDPOINT).
	Endpoint string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// CallTimeout bounds a plain call and the wait for SUBSCRIBE's response
	// headers (default 10s).
	CallTimeout time.Duration
}

// Client talks to one agent's executor API.
type Client struct {
	url   string
	token string
	calls *http.Client
	subs  *http.Client
}

// New returns a client for cfg.
func New(cfg Config) *Client {
	to := cfg.CallTimeout
	if to <= 0 {
		to = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: to, KeepAlive: 15 * time.Second}
	transport := func() *http.Transport {
		return &http.Transport{
			DialContext:           dialer.DialContext,
			ResponseHeaderTimeout: to,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		url:   "http://" + cfg.Endpoint + "/api/v1/executor",
		token: cfg.Token,
		calls: &http.Client{Transport: transport(), Timeout: to, CheckRedirect: noRedirect},
		// The subscription must use its own connection and lives as long as
		// the agent keeps it open: no overall timeout.
		subs: &http.Client{Transport: transport(), CheckRedirect: noRedirect},
	}
}

// URL returns the executor API URL.
func (c *Client) URL() string { return c.url }

// CloseIdle closes idle connections (at exit).
func (c *Client) CloseIdle() {
	c.calls.CloseIdleConnections()
	c.subs.CloseIdleConnections()
}

// Error is a call the agent answered with an unexpected HTTP status.
type Error struct {
	Call   string
	Status int
	Text   string
}

func (e *Error) Error() string {
	text := strings.TrimSpace(e.Text)
	if text == "" {
		text = http.StatusText(e.Status)
	}
	return fmt.Sprintf("agent refused %s: %d %s", e.Call, e.Status, text)
}

// Permanent reports whether repeating the same call cannot succeed: the agent
// judged the call itself (4xx), not its own state (5xx, 503 while recovering).
func (e *Error) Permanent() bool { return e.Status >= 400 && e.Status < 500 }

func (c *Client) post(ctx context.Context, hc *http.Client, call *executor.Call) (*http.Response, error) {
	body, err := json.Marshal(call)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s call: %w", call.Type, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot make %s call: %w", call.Type, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the agent at %s for %s: %w", c.url, call.Type, err)
	}
	return resp, nil
}

func errorOf(call string, resp *http.Response) error {
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return &Error{Call: call, Status: resp.StatusCode, Text: string(text)}
}

// Call sends a plain call (UPDATE, MESSAGE, HEARTBEAT) and expects 202.
func (c *Client) Call(ctx context.Context, call *executor.Call) error {
	resp, err := c.post(ctx, c.calls, call)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return errorOf(call.Type.String(), resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return nil
}

// Stream is a subscription: the agent's events in order.
type Stream struct {
	body io.ReadCloser
	rd   *recordio.Reader
}

// Subscribe sends SUBSCRIBE and returns the event stream once the agent
// answered 200. Closing ctx or the stream ends it.
func (c *Client) Subscribe(ctx context.Context, call *executor.Call) (*Stream, error) {
	resp, err := c.post(ctx, c.subs, call)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errorOf("SUBSCRIBE", resp)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		resp.Body.Close()
		return nil, fmt.Errorf("agent answered SUBSCRIBE with content type %q, want application/json", ct)
	}
	return &Stream{body: resp.Body, rd: recordio.NewReader(bufio.NewReaderSize(resp.Body, 64<<10), MaxEventBytes)}, nil
}

// ErrUnknownEvent is returned (wrapped) by Next for an event of a type this
// client does not know; the stream stays usable and the event is to be
// ignored (a newer agent may send more).
var ErrUnknownEvent = errors.New("unknown event type")

// Next returns the next event. io.EOF means the agent closed the stream.
func (s *Stream) Next() (*executor.Event, error) {
	rec, err := s.rd.Read()
	if err != nil {
		return nil, err
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(rec, &head); err != nil {
		return nil, fmt.Errorf("cannot decode an event from the agent (%d bytes): %w", len(rec), err)
	}
	if _, known := executor.Event_Type_value[head.Type]; !known || head.Type == "UNKNOWN" {
		return nil, fmt.Errorf("%w %.40q", ErrUnknownEvent, head.Type)
	}
	ev := new(executor.Event)
	if err := json.Unmarshal(rec, ev); err != nil {
		return nil, fmt.Errorf("cannot decode an event from the agent (%d bytes): %w", len(rec), err)
	}
	return ev, nil
}

// Close ends the subscription.
func (s *Stream) Close() error { return s.body.Close() }
