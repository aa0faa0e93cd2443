package main

import (
	"strings"
	"testing"
)

func TestMaxTasksFlag(t *testing.T) {
	cases := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"scheduler flag", "", []string{"scheduler", "--max_tasks", "0"}, "--max_tasks 0: give 1 or more (default 20000)"},
		{"scheduler environment", "-3", []string{"scheduler"}, "--max_tasks -3: give 1 or more"},
		{"up flag", "", []string{"up", "--max_tasks", "0"}, "tiltai up: --max_tasks 0: give 1 or more"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("TILTAI_MAX_TASKS", c.env)
			}
			code, _, errs := runCLI(t, "", c.args...)
			if code != 2 || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, c.want, errs)
			}
		})
	}
}
