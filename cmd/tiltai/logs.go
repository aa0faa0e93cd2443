package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/internal/termsafe"
	"github.com/tiltai/tiltai/scheduler/client"
)

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a task's stdout or stderr from its sandbox, and follow it",
		ArgsUsage: "TASK",
		Description: "Reads the task's sandbox on its Mesos agent through the scheduler (GET\n" +
			"/v1/tasks/TASK/files/stdout), as the Mesos web UI does: the last --lines lines, then\n" +
			"with --follow whatever the task writes, until Ctrl-C. Control characters and escape\n" +
			"sequences are shown escaped. Reading logs needs the scheduler's token when it has one.\n" +
			"Task ids are in tiltai ps.\n\n" +
			"Examples:\n" +
			"  tiltai logs printer.5\n" +
			"  tiltai logs --stderr --follow encryptor.3\n" +
			"  tiltai logs -n 100 feeder.1",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "stderr", Usage: "read stderr instead of stdout"},
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 10, Usage: "print the last `N` lines first (0: none)"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing what the task writes, until Ctrl-C"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "how often --follow asks for more"},
		}, schedulerFlags()...),
		Action: logs,
	}
}

// logChunk is how much the tail reads back per step to find --lines lines.
const logChunk = 64 << 10

func logs(c *cli.Context) error {
	as, err := args(c, 1, "TASK")
	if err != nil {
		return err
	}
	task, file := as[0], "stdout"
	if c.Bool("stderr") {
		file = "stderr"
	}
	lines := c.Int("lines")
	if lines < 0 {
		return usageErr(c, "--lines must be 0 or more, not %d", lines)
	}
	if c.Duration("interval") <= 0 {
		return usageErr(c, "--interval must be positive")
	}
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("cannot read %s's %s", task, file)
	end, err := cl.TaskFile(c.Context, task, file, -1, -1)
	if err != nil {
		return apiFail(c, api, what, err)
	}
	out := c.App.Writer
	tail, err := lastLines(c.Context, cl, task, file, end.Offset, lines)
	if err != nil {
		return apiFail(c, api, what, err)
	}
	writeLog(out, tail)
	if !c.Bool("follow") {
		return nil
	}
	offset := end.Offset
	tick := time.NewTicker(c.Duration("interval"))
	defer tick.Stop()
	for {
		for {
			f, err := cl.TaskFile(c.Context, task, file, offset, -1)
			if errors.Is(err, context.Canceled) {
				return nil // Ctrl-C ends following: that is how it stops
			}
			if err != nil {
				return apiFail(c, api, what, err)
			}
			if f.Offset < offset {
				// The file is shorter than what was read: rotated or
				// truncated. Start again from its beginning.
				fmt.Fprintf(c.App.ErrWriter, "%s: %s's %s was truncated; reading it from the start\n", c.Command.HelpName, task, file)
				offset = 0
				continue
			}
			writeLog(out, []byte(f.Data))
			offset = f.Offset + int64(len(f.Data))
			if f.Data == "" {
				break
			}
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-tick.C:
		}
	}
}

// lastLines reads back from end until it holds n lines (or the file's
// start), a chunk at a time.
func lastLines(ctx context.Context, cl *client.Client, task, file string, end int64, n int) ([]byte, error) {
	if n == 0 || end == 0 {
		return nil, nil
	}
	var buf []byte
	start := end
	for start > 0 && bytes.Count(bytes.TrimSuffix(buf, []byte("\n")), []byte("\n")) < n {
		from := max(start-logChunk, 0)
		var got []byte
		for at := from; at < start; {
			f, err := cl.TaskFile(ctx, task, file, at, start-at)
			if err != nil {
				return nil, err
			}
			if f.Data == "" {
				break
			}
			got = append(got, f.Data...)
			at += int64(len(f.Data))
		}
		buf = append(got, buf...)
		start = from
	}
	body := bytes.TrimSuffix(buf, []byte("\n"))
	for i := len(body) - 1; i >= 0; i-- {
		if body[i] == '\n' {
			if n--; n == 0 {
				return buf[i+1:], nil
			}
		}
	}
	return buf, nil
}

// writeLog prints what a service wrote with control characters and escape
// sequences neutralised (line breaks kept), so a service cannot drive the
// operator's terminal.
func writeLog(w io.Writer, data []byte) {
	if len(data) > 0 {
		io.WriteString(w, termsafe.Text(string(data)))
	}
}
