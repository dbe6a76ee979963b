package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The real binary, built once for the tests that signal a process: a
// build takes seconds, and two tests need it.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir) // a temporary folder of our own
	}
	os.Exit(code)
}

// builtBinary returns the path of `make build`'s binary.
func builtBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		if binary.dir, binary.err = os.MkdirTemp("", "qoslake-bin-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "qoslake")
		build := exec.Command("make", "-s", "build", "BIN="+binary.path)
		build.Dir = "../.."
		binary.out, binary.err = build.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("make build: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// startBinary starts the real binary with the stack's settings; its
// standard error is collected in the returned buffer.
func (s *stack) startBinary(bin string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	s.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	return cmd, &stderr
}
