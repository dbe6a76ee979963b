package main

import (
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
