package localmesos

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// HMACExecutorAuth is a ready ExecutorAuth: each executor's token is an
// HMAC of its framework and executor ids under a secret, so the agent needs
// no table of tokens and a token opens the API for that executor only.
type HMACExecutorAuth struct{ secret []byte }

// NewHMACExecutorAuth returns an ExecutorAuth keyed by secret (a random
// 32-byte key when secret is empty).
func NewHMACExecutorAuth(secret []byte) (*HMACExecutorAuth, error) {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
	}
	return &HMACExecutorAuth{secret: append([]byte(nil), secret...)}, nil
}

func (h *HMACExecutorAuth) token(frameworkID, executorID string) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(frameworkID))
	m.Write([]byte{0})
	m.Write([]byte(executorID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Token returns the executor's MESOS_EXECUTOR_AUTHENTICATION_TOKEN.
func (h *HMACExecutorAuth) Token(frameworkID, executorID string) (string, error) {
	return h.token(frameworkID, executorID), nil
}

// ErrUnauthenticated is returned for a missing or wrong executor token.
var ErrUnauthenticated = errors.New("missing or invalid executor token")

// Authenticate accepts "Bearer <token>" for exactly that executor.
func (h *HMACExecutorAuth) Authenticate(authorization, frameworkID, executorID string) error {
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || !hmac.Equal([]byte(tok), []byte(h.token(frameworkID, executorID))) {
		return ErrUnauthenticated
	}
	return nil
}
