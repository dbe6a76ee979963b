package silver_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"strings"

	"github.com/qoslake/qoslake/simulate"
)

// lines collects the simulator's log lines.
type lines struct {
	lines    []string
	realtime []simulate.RealtimeRecord
}

func (l *lines) PutEvents(_ context.Context, ev []simulate.Event) (int, error) { return len(ev), nil }
func (l *lines) PutRealtime(_ context.Context, r []simulate.RealtimeRecord) error {
	l.realtime = append(l.realtime, r...)
	return nil
}
func (l *lines) PutLog(_ context.Context, f simulate.LogFile) error {
	zr, err := gzip.NewReader(bytes.NewReader(f.Body))
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "#") {
			l.lines = append(l.lines, sc.Text())
		}
	}
	return sc.Err()
}
