package executor

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// OpenLog opens the executor's own log, LogFile in the sandbox (appended to,
// like the agent's stdout and stderr files), so that the sandbox's stdout and
// stderr hold only the service's output. format is "text" or "json".
func OpenLog(sandbox string, level slog.Level, format string) (*slog.Logger, io.Closer, error) {
	path := filepath.Join(sandbox, LogFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open the executor log: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(f, opts)), f, nil
	case "text", "":
		return slog.New(slog.NewTextHandler(f, opts)), f, nil
	}
	f.Close()
	return nil, nil, fmt.Errorf("log format %q: want text or json", format)
}
