package localmesos

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Mesos' authentication, behind the SchedulerAuth and ExecutorAuth seams:
// framework authentication with the master's --credentials file (HTTP Basic
// on the scheduler API, as Mesos' default "basic" HTTP authenticator), and
// executor authentication with the agent's --executor_secret_key (a JSON Web
// Token per executor, signed with HMAC-SHA256, handed to the executor in
// MESOS_EXECUTOR_AUTHENTICATION_TOKEN and checked as "Authorization: Bearer
// TOKEN", as Mesos' default "jwt" authenticator). See Mesos'
// docs/authentication.md.

// ErrBadCredentials is the answer to a scheduler call whose credentials are
// missing, malformed, of an unknown principal or with a wrong secret. It
// never says which, so a caller cannot probe for principals.
var ErrBadCredentials = errors.New("missing or invalid framework credentials")

// Credentials are the principals and secrets a master accepts, as Mesos'
// --credentials file holds them. Its String never shows a secret.
type Credentials struct {
	secrets map[string]string
}

// ParseCredentials reads Mesos' credentials format: JSON,
//
//	{"credentials": [{"principal": "p1", "secret": "s1"}, …]}
//
// or the older text form, one "principal secret" pair a line. Errors name
// the entry or line but never quote a secret.
func ParseCredentials(data []byte) (*Credentials, error) {
	c := &Credentials{secrets: map[string]string{}}
	add := func(where, principal, secret string) error {
		switch {
		case principal == "":
			return fmt.Errorf("%s: empty principal", where)
		case secret == "":
			return fmt.Errorf("%s: principal %q has an empty secret", where, principal)
		case c.secrets[principal] != "":
			return fmt.Errorf("%s: principal %q is listed twice", where, principal)
		}
		c.secrets[principal] = secret
		return nil
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var doc struct {
			Credentials []struct {
				Principal *string `json:"principal"`
				Secret    *string `json:"secret"`
			} `json:"credentials"`
		}
		if err := json.Unmarshal(trimmed, &doc); err != nil {
			return nil, fmt.Errorf(`not the Mesos credentials JSON ({"credentials": [{"principal": …, "secret": …}]}): %w`, redactJSONError(err))
		}
		for i, cr := range doc.Credentials {
			if cr.Principal == nil || cr.Secret == nil {
				return nil, fmt.Errorf("credential %d: needs both \"principal\" and \"secret\"", i+1)
			}
			if err := add(fmt.Sprintf("credential %d", i+1), *cr.Principal, *cr.Secret); err != nil {
				return nil, err
			}
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 2 {
				return nil, fmt.Errorf("line %d: want \"principal secret\", got %d fields", n, len(f))
			}
			if err := add(fmt.Sprintf("line %d", n), f[0], f[1]); err != nil {
				return nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if len(c.secrets) == 0 {
		return nil, errors.New("no credentials in it")
	}
	return c, nil
}

// redactJSONError keeps the kind and offset of a JSON error but drops any
// value it quotes (a type error quotes the value, which may be a secret).
func redactJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q must be a %s", typ.Field, typ.Type)
	}
	return errors.New("invalid JSON")
}

// LoadCredentials reads a credentials file; the path may be given as
// file:///path, as Mesos allows.
func LoadCredentials(path string) (*Credentials, error) {
	path = strings.TrimPrefix(path, "file://")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the credentials: %w", err)
	}
	c, err := ParseCredentials(b)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return c, nil
}

// Principals lists the principals, sorted.
func (c *Credentials) Principals() []string {
	ps := make([]string, 0, len(c.secrets))
	for p := range c.secrets {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// String names the principals only.
func (c *Credentials) String() string {
	return fmt.Sprintf("credentials of %s", strings.Join(c.Principals(), ", "))
}

// Authenticate implements SchedulerAuth: "Basic base64(principal:secret)"
// with a known principal and its secret (compared in constant time).
func (c *Credentials) Authenticate(authorization string) (string, error) {
	enc, ok := strings.CutPrefix(authorization, "Basic ")
	if !ok {
		return "", ErrBadCredentials
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", ErrBadCredentials
	}
	principal, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", ErrBadCredentials
	}
	want, known := c.secrets[principal]
	// Compare digests (equal length), and even for an unknown principal,
	// so that timing tells neither the secret's length nor the principal.
	got, exp := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(got[:], exp[:]) != 1 || !known {
		return "", ErrBadCredentials
	}
	return principal, nil
}

// JWTExecutorAuth is Mesos' executor authentication: each executor gets a
// JSON Web Token (header {"alg":"HS256","typ":"JWT"}, claims "fid" and
// "eid": its framework and executor IDs) signed with HMAC-SHA256 under the
// agent's secret key. A call is accepted with a token whose signature holds
// and whose claims name the calling executor. With Required false (Mesos:
// --executor_secret_key without --authenticate_http_executors) executors
// get tokens but calls are not checked.
type JWTExecutorAuth struct {
	key      []byte
	required bool
	now      func() time.Time
}

// NewJWTExecutorAuth signs tokens with key (not empty).
func NewJWTExecutorAuth(key []byte, required bool) (*JWTExecutorAuth, error) {
	if len(key) == 0 {
		return nil, errors.New("the executor secret key is empty")
	}
	return &JWTExecutorAuth{key: append([]byte(nil), key...), required: required, now: time.Now}, nil
}

// LoadExecutorSecretKey reads the key file of --executor_secret_key; its
// bytes are the key, as Mesos uses them.
func LoadExecutorSecretKey(path string) ([]byte, error) {
	path = strings.TrimPrefix(path, "file://")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the executor secret key: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("the executor secret key file %s is empty", path)
	}
	return b, nil
}

// Required reports whether executor calls must carry a valid token.
func (a *JWTExecutorAuth) Required() bool { return a.required }

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

type jwtClaims struct {
	EID string   `json:"eid"`
	FID string   `json:"fid"`
	Exp *float64 `json:"exp,omitempty"`
}

func (a *JWTExecutorAuth) sign(signingInput string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(signingInput))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Token implements ExecutorAuth.
func (a *JWTExecutorAuth) Token(frameworkID, executorID string) (string, error) {
	claims, err := json.Marshal(jwtClaims{EID: executorID, FID: frameworkID})
	if err != nil {
		return "", err
	}
	in := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	return in + "." + a.sign(in), nil
}

// ErrBadExecutorToken is the answer to an executor call without a valid
// token for that executor.
var ErrBadExecutorToken = errors.New("missing or invalid executor token")

// Authenticate implements ExecutorAuth. Empty IDs (a call that could not be
// parsed) need a valid token of any executor; the call then fails on its
// own.
func (a *JWTExecutorAuth) Authenticate(authorization, frameworkID, executorID string) error {
	if !a.required {
		return nil
	}
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return ErrBadExecutorToken
	}
	claims, err := a.verify(strings.TrimSpace(tok))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadExecutorToken, err)
	}
	if (frameworkID != "" && claims.FID != frameworkID) || (executorID != "" && claims.EID != executorID) {
		return fmt.Errorf("%w: the token is for another executor", ErrBadExecutorToken)
	}
	return nil
}

func (a *JWTExecutorAuth) verify(tok string) (jwtClaims, error) {
	var c jwtClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, errors.New("not a JSON Web Token (three dot-separated parts)")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return c, errors.New("the header is not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return c, errors.New("the header is not JSON")
	}
	// Only HS256: a token must not choose a weaker (or no) algorithm.
	if h.Alg != "HS256" || (h.Typ != "" && h.Typ != "JWT") {
		return c, fmt.Errorf("unsupported algorithm %q", h.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, errors.New("the signature is not base64url")
	}
	want, _ := base64.RawURLEncoding.DecodeString(a.sign(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, want) {
		return c, errors.New("bad signature")
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, errors.New("the claims are not base64url")
	}
	if err := json.Unmarshal(cb, &c); err != nil {
		return c, errors.New("the claims are not JSON")
	}
	if c.Exp != nil && a.now().After(time.Unix(0, int64(*c.Exp*1e9))) {
		return c, errors.New("expired")
	}
	return c, nil
}

// AuthFlags are the authentication flags of Mesos' master and agent, as
// `tiltai localmesos` takes them.
type AuthFlags struct {
	// AuthenticateFrameworks requires schedulers to authenticate (HTTP
	// Basic) with one of Credentials (Mesos: --authenticate_frameworks,
	// --authenticate_http_frameworks).
	AuthenticateFrameworks bool
	// Credentials is the credentials file (--credentials).
	Credentials string
	// AuthenticateHTTPExecutors requires executors to present their token
	// (--authenticate_http_executors).
	AuthenticateHTTPExecutors bool
	// ExecutorSecretKey is the file of the key executor tokens are signed
	// with (--executor_secret_key).
	ExecutorSecretKey string
}

// Apply loads the files and sets cfg's SchedulerAuth and ExecutorAuth. It
// lists every problem at once. As in Mesos, credentials without
// AuthenticateFrameworks authenticate nobody, and a secret key without
// AuthenticateHTTPExecutors gives executors tokens that are not checked.
func (f AuthFlags) Apply(cfg *Config) error {
	var errs []error
	if f.AuthenticateFrameworks && f.Credentials == "" {
		errs = append(errs, errors.New("--authenticate_frameworks needs --credentials (a file of principals and secrets)"))
	}
	if f.AuthenticateHTTPExecutors && f.ExecutorSecretKey == "" {
		errs = append(errs, errors.New("--authenticate_http_executors needs --executor_secret_key (a file holding the key tokens are signed with)"))
	}
	if f.Credentials != "" {
		creds, err := LoadCredentials(f.Credentials)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--credentials: %w", err))
		case f.AuthenticateFrameworks:
			cfg.SchedulerAuth = creds
		}
	}
	if f.ExecutorSecretKey != "" {
		key, err := LoadExecutorSecretKey(f.ExecutorSecretKey)
		if err == nil {
			var a *JWTExecutorAuth
			if a, err = NewJWTExecutorAuth(key, f.AuthenticateHTTPExecutors); err == nil {
				cfg.ExecutorAuth = a
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--executor_secret_key: %w", err))
		}
	}
	return errors.Join(errs...)
}
