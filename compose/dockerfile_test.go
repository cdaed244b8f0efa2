package compose

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	Line int
	Cmd  string // upper case
	Args string
}

// stage is one FROM ... [AS name] block.
type stage struct {
	Base, Name string
	Body       []instruction
}

func parseDockerfile(t *testing.T, path string) (args map[string]string, stages []stage) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	args = map[string]string{}
	var cur strings.Builder
	start := 0
	var insts []instruction
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		insts = append(insts, instruction{start, strings.ToUpper(cmd), strings.TrimSpace(rest)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: unterminated continuation at line %d", path, start)
	}
	for _, in := range insts {
		switch {
		case in.Cmd == "FROM":
			f := strings.Fields(in.Args)
			st := stage{Base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.Cmd == "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			args[k] = v
		case len(stages) == 0:
			t.Fatalf("%s:%d: %s before the first FROM", path, in.Line, in.Cmd)
		default:
			stages[len(stages)-1].Body = append(stages[len(stages)-1].Body, in)
		}
	}
	return args, stages
}

// expand substitutes ${NAME} and $NAME with the global ARG defaults.
func expand(s string, args map[string]string) string {
	return os.Expand(s, func(k string) string { return args[k] })
}

// TestDockerfile checks the image recipe without a Docker engine: the stages the compose file
// relies on, every COPY source present in the build context, versions in step with the Makefile
// and go.mod, ONNX Runtime where KRONOS_ORT_LIB says, and a non-root user.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	args, stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 3 {
		t.Fatalf("want the ort, build and final stages, got %d stages", len(stages))
	}
	names := map[string]stage{}
	for _, s := range stages {
		if s.Name != "" {
			names[s.Name] = s
		}
	}

	// Versions: ORT as in the Makefile, Go as in go.mod.
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^ORT_NPM_VERSION \?= (\S+)$`).FindSubmatch(makefile); m == nil {
		t.Error("Makefile: ORT_NPM_VERSION not found")
	} else if args["ORT_NPM_VERSION"] != string(m[1]) {
		t.Errorf("Dockerfile ORT_NPM_VERSION=%s, Makefile %s", args["ORT_NPM_VERSION"], m[1])
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod); m == nil {
		t.Error("go.mod: go directive not found")
	} else if args["GO_VERSION"] != string(m[1]) {
		t.Errorf("Dockerfile GO_VERSION=%s, go.mod go %s", args["GO_VERSION"], m[1])
	}

	ort, ok := names["ort"]
	if !ok || !strings.HasPrefix(ort.Base, "node:") {
		t.Errorf("want a node stage named ort, got %+v", ort)
	}
	build, ok := names["build"]
	if !ok || !strings.HasPrefix(expand(build.Base, args), "golang:"+args["GO_VERSION"]) {
		t.Errorf("want a golang:%s stage named build, got %q", args["GO_VERSION"], build.Base)
	}
	for _, s := range stages {
		if strings.Contains(s.Base, ":latest") || !strings.Contains(s.Base, ":") {
			t.Errorf("stage base %q is not pinned to a tag", s.Base)
		}
	}
	var cgo, npm bool
	for _, in := range build.Body {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "CGO_ENABLED=1") && strings.Contains(in.Args, "go build") {
			cgo = true
		}
	}
	for _, in := range ort.Body {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "onnxruntime-node@${ORT_NPM_VERSION}") && strings.Contains(in.Args, "libonnxruntime.so.1") {
			npm = true
		}
	}
	if !cgo {
		t.Error("build stage: no `CGO_ENABLED=1 go build`")
	}
	if !npm {
		t.Error("ort stage: libonnxruntime.so.1 is not taken from onnxruntime-node@${ORT_NPM_VERSION}")
	}

	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.Base, "debian:") || !strings.HasSuffix(final.Base, "-slim") {
		t.Errorf("final stage base %q, want debian:<release>-slim", final.Base)
	}
	env := map[string]string{}
	var user, entrypoint string
	copied := map[string]string{} // destination -> "from:source"
	for _, in := range final.Body {
		switch in.Cmd {
		case "ENV":
			for _, f := range strings.Fields(in.Args) {
				if k, v, ok := strings.Cut(f, "="); ok {
					env[k] = v
				}
			}
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		case "COPY":
			f := strings.Fields(in.Args)
			from := ""
			var rest []string
			for _, x := range f {
				if v, ok := strings.CutPrefix(x, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(x, "--") {
					rest = append(rest, x)
				}
			}
			if len(rest) >= 2 {
				copied[rest[len(rest)-1]] = from + ":" + rest[0]
			}
		}
	}
	if lib := env["KRONOS_ORT_LIB"]; lib != "/opt/onnxruntime/libonnxruntime.so.1" || copied[lib] != "ort:/ort/libonnxruntime.so.1" {
		t.Errorf("KRONOS_ORT_LIB=%q; copied there: %q; want /opt/onnxruntime/libonnxruntime.so.1 from the ort stage", lib, copied[lib])
	}
	if repo := env["KRONOS_MODEL_REPOSITORY"]; copied[repo] != ":model_repository" {
		t.Errorf("KRONOS_MODEL_REPOSITORY=%q, but model_repository is copied to %v", repo, copied)
	}
	if m := regexp.MustCompile(`^(\d+)(:(\d+))?$`).FindStringSubmatch(user); m == nil || m[1] == "0" {
		t.Errorf("USER %q: want a numeric non-root uid[:gid]", user)
	}
	if !strings.Contains(entrypoint, "/usr/local/bin/kronos-gateway") {
		t.Errorf("ENTRYPOINT %q does not run kronos-gateway", entrypoint)
	}

	// Every COPY from the build context must exist there and not be excluded by the dockerignore.
	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var ignored []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored = append(ignored, l)
		}
	}
	for _, s := range stages {
		for _, in := range s.Body {
			if in.Cmd != "COPY" || strings.Contains(in.Args, "--from=") {
				continue
			}
			var srcs []string
			for _, x := range strings.Fields(in.Args) {
				if !strings.HasPrefix(x, "--") {
					srcs = append(srcs, x)
				}
			}
			for _, src := range srcs[:len(srcs)-1] {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("Dockerfile:%d: COPY source %s: %v", in.Line, src, err)
				}
				if slices.Contains(ignored, strings.TrimSuffix(src, "/")) {
					t.Errorf("Dockerfile:%d: COPY source %s is excluded by Dockerfile.dockerignore", in.Line, src)
				}
			}
		}
	}
}
