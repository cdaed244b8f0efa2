// Package locust tests the load-test assets: the Python unit tests of the shapes and payloads run
// with the interpreter that has Locust installed, and run.sh's argument handling. The 30-second
// headless smoke against a real gateway is part of the opsstack test (grafana/opsstack_test.go).
package locust

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// locustPython returns the Python interpreter of the installed locust command (its shebang), so
// that the tests import the same Locust that run.sh uses. It skips when Locust is not installed.
func locustPython(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("locust")
	if err != nil {
		t.Skip("locust not installed (Debian package python3-locust); skipping")
	}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	if interp, ok := strings.CutPrefix(strings.TrimSpace(line), "#!"); ok {
		fields := strings.Fields(interp)
		if len(fields) > 0 && strings.HasSuffix(fields[0], "/env") {
			fields = fields[1:]
		}
		if len(fields) > 0 && strings.Contains(fields[0], "python") {
			return fields[0]
		}
	}
	t.Fatalf("cannot tell the Python interpreter of %s from its first line %q", bin, line)
	return ""
}

func TestLocustfileUnits(t *testing.T) {
	python := locustPython(t)
	cmd := exec.Command(python, "-m", "unittest", "-v", "test_locustfile")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -m unittest test_locustfile: %v\n%s", python, err, out)
	}
	t.Logf("%s", out)
}

// TestRunScriptRejectsBadUsage checks that run.sh refuses bad arguments with status 2 before
// starting any load.
func TestRunScriptRejectsBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"steady"},
		{"soak", "http://127.0.0.1:1"},
		{"steady", "127.0.0.1:1"},
		{"steady", "http://127.0.0.1:1", "five minutes"},
		{"steady", "http://127.0.0.1:1", "0"},
		{"steady", "http://127.0.0.1:1", "5m", "extra"},
	} {
		cmd := exec.Command("./run.sh", args...)
		cmd.Env = append(os.Environ(), "RESULTS_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("run.sh %q: %v, want exit status 2\n%s", args, err, out)
		}
		if strings.Contains(string(out), "results in") {
			t.Errorf("run.sh %q started a run:\n%s", args, out)
		}
	}
}
