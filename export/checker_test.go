package export

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
)

// python is the interpreter with the onnx package (Debian python3-onnx).
const python = "/usr/bin/python3"

// checkScript runs onnx.checker.check_model with full_check (strict shape
// inference) on every path given and reports each failure.
const checkScript = `
import sys, onnx
bad = 0
for p in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(p), full_check=True)
    except Exception as e:
        bad += 1
        print("%s: %s" % (p, e))
sys.exit(1 if bad else 0)
`

func needChecker(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import onnx").Run(); err != nil {
		t.Skipf("%s cannot import onnx (apt-get install python3-onnx): %v", python, err)
	}
}

// TestONNXChecker runs the reference ONNX checker on every graph of every
// carried configuration.
func TestONNXChecker(t *testing.T) {
	needChecker(t)
	dir := t.TempDir()
	var paths []string
	for _, c := range allConfigs {
		m := loadModel(t, c)
		for _, r := range graphs.Roles {
			b, err := m.ONNX(r)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, c.name+"-"+string(r)+".onnx")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
	}
	cmd := exec.Command(python, append([]string{"-c", checkScript}, paths...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("onnx.checker: %v\n%s", err, strings.TrimSpace(out.String()))
	}
}

// TestDeterministic exports every graph twice from separately loaded
// checkpoints and requires identical bytes.
func TestDeterministic(t *testing.T) {
	a, b := loadModel(t, nano), loadModel(t, nano)
	for _, r := range graphs.Roles {
		x, err := a.ONNX(r)
		if err != nil {
			t.Fatal(err)
		}
		y, err := b.ONNX(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s: two exports differ (%d and %d bytes)", r, len(x), len(y))
		}
	}
}
