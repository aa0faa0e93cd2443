// Command fakemarathon runs the marathontest server as a process, so that a
// script can deploy the real tiltai scheduler through `tiltai deploy` on a
// machine without Marathon (CI, a laptop): apps run as local processes with
// Marathon's environment and health checks. It prints its URL on stdout
// once it listens and stops on SIGINT or SIGTERM, killing its tasks.
//
//	go run ./deploy/marathontest/fakemarathon --listen 127.0.0.1:8080 --dir /tmp/fm
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tiltai/tiltai/deploy/marathontest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve Marathon's API on")
	dir := flag.String("dir", "", "directory for task sandboxes (default: a new temporary directory)")
	users := flag.String("users", "", "user:password[,user:password] to require HTTP Basic auth")
	health := flag.Duration("health-interval", time.Second, "interval of the apps' health checks")
	flag.Parse()
	if err := run(*listen, *dir, *users, *health); err != nil {
		fmt.Fprintln(os.Stderr, "fakemarathon:", err)
		os.Exit(1)
	}
}

func run(listen, dir, users string, health time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if dir == "" {
		d, err := os.MkdirTemp("", "fakemarathon-")
		if err != nil {
			return err
		}
		dir = d
	}
	opts := marathontest.Options{
		Addr:           listen,
		Runner:         &marathontest.ProcessRunner{Dir: dir},
		HealthInterval: health,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if users != "" {
		opts.Users = map[string]string{}
		for _, up := range strings.Split(users, ",") {
			u, p, ok := strings.Cut(up, ":")
			if !ok || u == "" {
				return fmt.Errorf("--users %q: want user:password[,user:password]", users)
			}
			opts.Users[u] = p
		}
	}
	s, err := marathontest.New(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Println(s.URL())
	<-ctx.Done()
	return s.Close()
}
