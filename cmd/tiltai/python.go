package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/tiltai/tiltai/python"
	"github.com/urfave/cli/v2"
)

func init() {
	// `tiltai python` replaces itself with python3 (syscall.Exec), which
	// must happen on the main thread: the parent-death signal the executor
	// gives its service (PR_SET_PDEATHSIG, so a killed executor leaves no
	// service behind) belongs to the thread it was set on, and an exec from
	// another thread of this process would drop it. Main runs the command's
	// action on this goroutine, locked here to the main thread.
	if len(os.Args) > 1 && os.Args[1] == "python" {
		runtime.LockOSThread()
	}
}

// pythonCommand runs a Python interpreter with the Python gates, embedded
// in this binary, importable: a spec runs a Python service with `command:
// tiltai` and `args: [python, -m, my.service]` on any agent with python3,
// nothing installed, as the executor puts tiltai on every service's PATH.
func pythonCommand() *cli.Command {
	return &cli.Command{
		Name:      "python",
		Usage:     "run python3 with the Python gates (the tiltai package, embedded in this binary) importable",
		UsageText: "tiltai python [--] PYTHON-ARGUMENTS...",
		Description: "Runs a Python service on Tiltai gates with nothing installed but Python 3.11 or later. In a spec:\n" +
			"  command: tiltai\n" +
			"  args: [python, -m, my.service]        # or [python, service.py, --flag]\n" +
			"It writes the package into the task's sandbox ($MESOS_SANDBOX/.tiltai/python) or, outside Mesos,\n" +
			"the user cache directory, puts it first on PYTHONPATH and replaces itself with $PYTHON, else the\n" +
			"python3 on PATH, given every argument as is (a leading -- is dropped: `tiltai python -- --help` is\n" +
			"python3's own help). The service is then that interpreter: the executor's signals reach it directly.\n" +
			"Writing services: docs/gates.md (Python services) and python/README.md. Try:\n" +
			"  tiltai python -m tiltai --version",
		SkipFlagParsing: true,
		HideHelpCommand: true,
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				return cli.ShowCommandHelp(c.Lineage()[1], c.Command.Name)
			}
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			path, env, err := pythonEnv(os.Environ())
			if err != nil {
				return cli.Exit("tiltai python: "+err.Error(), 1)
			}
			err = syscall.Exec(path, append([]string{path}, args...), env)
			return cli.Exit(fmt.Sprintf("tiltai python: cannot run %s: %v", path, err), 1)
		},
	}
}

// pythonEnv installs the embedded package and returns the interpreter to
// run and its environment: environ with the package first on PYTHONPATH.
func pythonEnv(environ []string) (string, []string, error) {
	get := func(k string) string {
		for i := len(environ) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(environ[i], k+"="); ok {
				return v
			}
		}
		return ""
	}
	dir := ""
	if box := get("MESOS_SANDBOX"); box != "" {
		dir = filepath.Join(box, ".tiltai", "python")
	} else if cache, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(cache, "tiltai", "python-"+python.Version())
	} else {
		return "", nil, fmt.Errorf("no directory to put the Python gates in (no $MESOS_SANDBOX, and %v); run python3 with PYTHONPATH=python/ of the tiltai repository instead", err)
	}
	if err := python.Install(dir); err != nil {
		return "", nil, err
	}
	interp := get("PYTHON")
	if interp == "" {
		interp = "python3"
	}
	path, err := exec.LookPath(interp) // this process's PATH: the one python3 is run with
	if err != nil {
		return "", nil, fmt.Errorf("cannot run %s (install Python 3.11 or later, or set PYTHON to the interpreter): %w", interp, err)
	}
	pp := dir
	if old := get("PYTHONPATH"); old != "" {
		pp += string(os.PathListSeparator) + old
	}
	env := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "PYTHONPATH=") {
			env = append(env, kv)
		}
	}
	return path, append(env, "PYTHONPATH="+pp), nil
}
