package wire

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/tiltai/tiltai/localmesos/internal/protojson"
)

// Codec is a body encoding of the v1 APIs.
type Codec int

const (
	JSON Codec = iota
	Protobuf
)

const (
	MediaJSON     = "application/json"
	MediaProtobuf = "application/x-protobuf"
)

// MediaType returns the Content-Type of the codec.
func (c Codec) MediaType() string {
	if c == Protobuf {
		return MediaProtobuf
	}
	return MediaJSON
}

func (c Codec) String() string {
	if c == Protobuf {
		return "protobuf"
	}
	return "json"
}

// Message is what both codecs can handle: a gogo-generated message.
type Message interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// Error is an HTTP error answer with Mesos' status and text.
type Error struct {
	Status int
	Text   string
	Allow  string // for 405
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Text) }

// BadRequest returns a 400 error with the given text.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Text: fmt.Sprintf(format, args...)}
}

// WriteError answers with a text/plain error, as Mesos does.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Text: err.Error()}
	}
	if e.Allow != "" {
		w.Header().Set("Allow", e.Allow)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(e.Text)))
	w.WriteHeader(e.Status)
	_, _ = io.WriteString(w, e.Text)
}

// WriteAccepted answers 202 with an empty body and no Content-Type.
func WriteAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// CheckPost refuses anything but POST like Mesos (405 with Allow: POST).
func CheckPost(r *http.Request) error {
	if r.Method == http.MethodPost {
		return nil
	}
	return &Error{Status: http.StatusMethodNotAllowed, Allow: "POST",
		Text: fmt.Sprintf("405 Method Not Allowed. Expecting one of { 'POST' }, but received '%s'.", r.Method)}
}

// RequestCodec reads the codec of the request body from Content-Type.
func RequestCodec(r *http.Request) (Codec, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return 0, BadRequest("Expecting 'Content-Type' to be present")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		switch mt {
		case MediaJSON:
			return JSON, nil
		case MediaProtobuf:
			return Protobuf, nil
		}
	}
	return 0, &Error{Status: http.StatusUnsupportedMediaType, Text: "Expecting 'Content-Type' of application/json or application/x-protobuf"}
}

// ResponseCodec picks the codec of the answer from Accept: JSON when it is
// acceptable (also when Accept is absent), else protobuf, else 406.
func ResponseCodec(r *http.Request) (Codec, error) {
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return JSON, nil
	}
	if accepts(accept, MediaJSON) {
		return JSON, nil
	}
	if accepts(accept, MediaProtobuf) {
		return Protobuf, nil
	}
	return 0, &Error{Status: http.StatusNotAcceptable, Text: "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'"}
}

func accepts(values []string, media string) bool {
	typ, _, _ := strings.Cut(media, "/")
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					continue
				}
			}
			if mt == media || mt == "*/*" || mt == typ+"/*" {
				return true
			}
		}
	}
	return false
}

// MaxBody bounds a call body. Mesos calls are small; a launch of many tasks
// is the largest and stays far below this.
const MaxBody = 16 << 20

// ReadBody reads the request body, refusing more than MaxBody bytes.
func ReadBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, BadRequest("Failed to read the request body: %v", err)
	}
	if len(body) > MaxBody {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Text: fmt.Sprintf("Request body exceeds %d bytes", MaxBody)}
	}
	return body, nil
}

// Decode parses a call body into msg. what names the message in errors
// ("Call" for the scheduler API, "Executor::Call" texts use the same words).
func Decode(c Codec, body []byte, msg Message) error {
	if c == Protobuf {
		if err := unmarshalProto(body, msg); err != nil {
			return BadRequest("Failed to parse body into Call protobuf: %v", err)
		}
		return nil
	}
	if err := protojson.Unmarshal(body, msg); err != nil {
		var se *protojson.SyntaxError
		if errors.As(err, &se) {
			return BadRequest("Failed to parse body into JSON: %v", se.Err)
		}
		return BadRequest("Failed to convert JSON into Call protobuf: %v", err)
	}
	return nil
}

// unmarshalProto is msg.Unmarshal, which panics on some malformed input:
// mesos-go's generated decoders (gogo/protobuf) add a length field to the
// offset without checking for overflow, so a length near 2^63 slices out
// of range (found by FuzzDecodeCall; the input is in its corpus). A body
// from the network must cost the caller a 400, not the handler a panic.
func unmarshalProto(body []byte, msg Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed protobuf (%v)", r)
		}
	}()
	return msg.Unmarshal(body)
}

// JSONWriter is a message that writes its own JSON, for answers whose JSON
// is not a plain rendering of a mesos-go message (Mesos' hand-written
// operator API writers).
type JSONWriter interface {
	MesosJSON() ([]byte, error)
}

// Encode marshals msg in the codec.
func Encode(c Codec, msg Message) ([]byte, error) {
	if c == Protobuf {
		return msg.Marshal()
	}
	if j, ok := msg.(JSONWriter); ok {
		return j.MesosJSON()
	}
	return protojson.Marshal(msg)
}
