package api

import (
	"net/http"
	"strconv"

	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// Version is the Mesos version localmesos answers as.
const Version = "1.11.0"

// NotFound answers 404 as Mesos does.
func NotFound(w http.ResponseWriter, _ *http.Request) {
	wire.WriteError(w, &wire.Error{Status: http.StatusNotFound, Text: "404 Not Found."})
}

// Health answers /health: 200 with no body.
func Health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// versionJSON is what Mesos 1.11 answers on /version.
const versionJSON = `{"build_date":"localmesos","build_time":0.0,"build_user":"","version":"` + Version + `"}`

// ServeVersion answers /version.
func ServeVersion(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, []byte(versionJSON))
}

// WriteJSON answers 200 with a JSON body.
func WriteJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
