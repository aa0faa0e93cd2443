package apitypes

import (
	"encoding/json"
	"strconv"
	"time"
)

// Event is one thing the scheduler did or saw, as streamed on
// GET /v1/events (Server-Sent Events).
type Event struct {
	Seq  uint64         `json:"seq"`
	Time time.Time      `json:"time"`
	Type string         `json:"type"`
	Data map[string]any `json:"data,omitempty"`
}

// SSE renders e as one Server-Sent Events frame: id (its Seq), event (its
// Type) and data (e as JSON, on one line).
func (e Event) SSE() []byte {
	b, _ := json.Marshal(e)
	out := make([]byte, 0, len(b)+64)
	out = append(out, "id: "...)
	out = strconv.AppendUint(out, e.Seq, 10)
	out = append(out, "\nevent: "...)
	out = append(out, e.Type...)
	out = append(out, "\ndata: "...)
	out = append(out, b...)
	out = append(out, "\n\n"...)
	return out
}
