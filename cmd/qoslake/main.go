// Command qoslake is the video QoS analytics pipeline: ingest player events
// and CDN logs into Iceberg tables, refine them, and serve the NOC
// dashboard. See `qoslake help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := NewMain(os.Stdout, os.Stderr).Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
