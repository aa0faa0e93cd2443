package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/protojson"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// FlagsJSON is the {"flags": {name: value}} of /flags, from the same list
// as the operator API's GET_FLAGS.
func FlagsJSON(flags []mesos.Flag) []byte {
	obj := ojson.Object{}
	for _, f := range flags {
		obj = append(obj, ojson.KV{K: f.Name, V: f.GetValue()})
	}
	return ojson.Marshal(ojson.Object{{K: "flags", V: obj}})
}

// OpAnswer is an operator call's answer: an error, or a response in both
// encodings.
type OpAnswer struct {
	Err  *wire.Error
	PB   wire.Message
	JSON []byte
}

// DecodeOperatorCall does what Mesos' api handlers do before looking at the
// call: POST only, Content-Type, body, the validation that needs no state
// (with what "master::Call" or "agent::Call" says), then Accept.
func DecodeOperatorCall(r *http.Request, call wire.Message, what string, validate func() string) (wire.Codec, error) {
	if err := wire.CheckPost(r); err != nil {
		return 0, err
	}
	codec, err := wire.RequestCodec(r)
	if err != nil {
		return 0, err
	}
	body, err := wire.ReadBody(r)
	if err != nil {
		return 0, err
	}
	if err := wire.Decode(codec, body, call); err != nil {
		return 0, err
	}
	if msg := validate(); msg != "" {
		if msg == "UNKNOWN" {
			// A type given as UNKNOWN is a valid enum value: Mesos answers
			// NotImplemented(); a missing or unknown type fails validation.
			if codec == wire.JSON && jsonTypeIs(body, "UNKNOWN") {
				return 0, &wire.Error{Status: http.StatusNotImplemented, Text: "501 Not Implemented."}
			}
			msg = "Expecting 'type' to be present"
		}
		return 0, wire.BadRequest("Failed to validate %s: %s", what, msg)
	}
	return wire.ResponseCodec(r)
}

func jsonTypeIs(body []byte, want string) bool {
	var v struct {
		Type *string `json:"type"`
	}
	return json.Unmarshal(body, &v) == nil && v.Type != nil && *v.Type == want
}

// WriteOperatorAnswer answers 200 with the response, or 200 with an empty
// body for calls that have no response (as Mesos' OK()).
func WriteOperatorAnswer(w http.ResponseWriter, codec wire.Codec, ans OpAnswer) error {
	if ans.PB == nil {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	body := ans.JSON
	if codec == wire.Protobuf {
		b, err := ans.PB.Marshal()
		if err != nil {
			return fmt.Errorf("cannot encode the answer: %w", err)
		}
		body = b
	}
	w.Header().Set("Content-Type", codec.MediaType())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// NotImplemented answers an operator call localmesos does not implement.
func NotImplemented(t fmt.Stringer) *wire.Error {
	return &wire.Error{Status: http.StatusNotImplemented, Text: fmt.Sprintf("Call type %s is not implemented by localmesos", t)}
}

// LowerType is the response field named after its type: GET_STATE →
// get_state.
func LowerType(t string) string {
	b := []byte(t)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Raw renders a protobuf message as Mesos' JSON.
func Raw(msg any) ojson.Raw {
	b, err := protojson.Marshal(msg)
	if err != nil {
		return ojson.Raw("{}")
	}
	return ojson.Raw(b)
}

// RawList renders a list of messages, [] when empty.
func RawList[T any](items []T) []ojson.Raw {
	out := make([]ojson.Raw, 0, len(items))
	for i := range items {
		out = append(out, Raw(&items[i]))
	}
	return out
}

// VersionInfo is the GET_VERSION answer.
func VersionInfo() mesos.VersionInfo {
	date, t, user := "localmesos", 0.0, ""
	return mesos.VersionInfo{Version: Version, BuildDate: &date, BuildTime: &t, BuildUser: &user}
}

// FrameworkInfoShown fills the fields Mesos shows with their defaults.
func FrameworkInfoShown(fi mesos.FrameworkInfo) mesos.FrameworkInfo {
	if fi.FailoverTimeout == nil {
		v := 0.0
		fi.FailoverTimeout = &v
	}
	if fi.Checkpoint == nil {
		v := false
		fi.Checkpoint = &v
	}
	fi.Role = nil // deprecated: Mesos does not show its default
	return fi
}

// SortedKeys returns the keys of m in order.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
