package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tiltai/tiltai/internal/termsafe"
	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// Error is the JSON body of every error answer.
type Error = apitypes.Error

// WriteJSON answers v as indented JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError answers code with an Error body.
func WriteError(w http.ResponseWriter, code int, format string, args ...any) {
	WriteJSON(w, code, Error{Error: fmt.Sprintf(format, args...)})
}

// writeBusy answers 503 with Retry-After: the client should try again then.
func writeBusy(w http.ResponseWriter, retryAfter time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retryAfter.Round(time.Second)/time.Second))))
	WriteError(w, http.StatusServiceUnavailable, "%s", msg)
}

// StatusError is an answer other than 200 OK: the status and why. The
// handler's request checks return it, and so may a Service's TaskFile.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

func statusErr(code int, format string, args ...any) error {
	return &StatusError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// writeStatusError answers err: its own status when it is a
// *StatusError, else 400.
func writeStatusError(w http.ResponseWriter, err error) {
	writeStatusErrorOr(w, err, http.StatusBadRequest)
}

// writeStatusErrorOr answers err: its own status when it is a
// *StatusError, else code.
func writeStatusErrorOr(w http.ResponseWriter, err error, code int) {
	var re *StatusError
	if errors.As(err, &re) {
		WriteError(w, re.Code, "%s", re.Msg)
		return
	}
	WriteError(w, code, "%v", err)
}

// checkEncoding refuses a compressed body: the size limits count the bytes
// the parser sees, and nothing here inflates.
func checkEncoding(r *http.Request) error {
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return statusErr(http.StatusUnsupportedMediaType, "Content-Encoding %q is not accepted; send the body uncompressed", enc)
			}
		}
	}
	return nil
}

// readBody reads at most limit bytes; more is a 413.
func readBody(r *http.Request, limit int, tooLarge string) ([]byte, error) {
	if err := checkEncoding(r); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, statusErr(http.StatusBadRequest, "cannot read the request body: %v", err)
	}
	if len(data) > limit {
		return nil, statusErr(http.StatusRequestEntityTooLarge, tooLarge, limit)
	}
	return data, nil
}

// decodeJSON reads a JSON request body of at most limit bytes into v:
// exactly one JSON value, no unknown fields, nothing after it. want shows
// the expected body in the error ({"instances": N}).
func decodeJSON(r *http.Request, limit int, v any, want string) error {
	data, err := readBody(r, limit, "the body is larger than %d bytes; send "+want)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return statusErr(http.StatusBadRequest, "the body must be %s: %v", want, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return statusErr(http.StatusBadRequest, "the body must be %s and nothing after it; found more data at byte %d", want, dec.InputOffset())
	}
	return nil
}

// The media types PUT /v1/spec takes; the parser tells YAML from JSON by
// itself, so the type only hints it.
var (
	yamlTypes = []string{"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
	jsonTypes = []string{"application/json"}
)

// acceptedSpecTypes names the media types of a spec, for errors and docs.
func acceptedSpecTypes() string {
	return strings.Join(append(append([]string{}, yamlTypes...), jsonTypes...), ", ")
}

// readSpec reads the body of PUT /v1/spec: its name (?name=, checked by
// checkName; default "spec", with ".json" added for a JSON body so the
// parser reads it as JSON) and at most maxBytes of text. It refuses an
// unknown Content-Type or any Content-Encoding with 415, a larger body with
// 413.
func readSpec(r *http.Request, maxBytes int) (name string, src []byte, err error) {
	name = r.URL.Query().Get("name")
	if err := checkName("?name=", name); err != nil {
		return "", nil, err
	}
	if name == "" {
		name = "spec"
	}
	isJSON := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		known := err == nil && (contains(yamlTypes, mt) || contains(jsonTypes, mt))
		if !known {
			return "", nil, statusErr(http.StatusUnsupportedMediaType, "Content-Type %q is not a spec type; send one of %s (or none, and the body is read as YAML or JSON by its first character)", ct, acceptedSpecTypes())
		}
		if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
			return "", nil, statusErr(http.StatusUnsupportedMediaType, "charset %q is not accepted; a spec is UTF-8", cs)
		}
		isJSON = contains(jsonTypes, mt)
	}
	if src, err = readBody(r, maxBytes, "the spec is larger than %d bytes; split it"); err != nil {
		return "", nil, err
	}
	if isJSON && !strings.HasSuffix(name, ".json") {
		name += ".json"
	}
	return name, src, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// maxNameBytes bounds a spec's ?name=.
const maxNameBytes = apitypes.MaxNameBytes

// checkName refuses a client-given name that is stored and shown to
// operators later (a spec's ?name=): invalid UTF-8, control characters,
// escape sequences and bidi controls could forge what a terminal shows.
func checkName(what, s string) error {
	switch {
	case len(s) > maxNameBytes:
		return statusErr(http.StatusBadRequest, "%s is %d bytes long; give at most %d, e.g. the file name", what, len(s), maxNameBytes)
	case !utf8.ValidString(s):
		return statusErr(http.StatusBadRequest, "%s %s is not UTF-8; give a file name in UTF-8", what, strconv.Quote(s))
	case termsafe.Unsafe(s):
		return statusErr(http.StatusBadRequest, "%s %s holds control characters (or bidi controls) that would garble a terminal; give a plain file name", what, strconv.QuoteToASCII(s))
	}
	return nil
}

// ifMatch reads If-Match: "3", 3, W/"3" or *; -1 when absent or *.
func ifMatch(r *http.Request) (int, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return -1, nil
	}
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, statusErr(http.StatusBadRequest, "If-Match %s is not a spec version (the ETag of GET /v1/spec)", strconv.QuoteToASCII(r.Header.Get("If-Match")))
	}
	return n, nil
}

// dryRun reads ?dry_run=1 (or true).
func dryRun(r *http.Request) bool {
	v := r.URL.Query().Get("dry_run")
	return v == "1" || v == "true"
}
