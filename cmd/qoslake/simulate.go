package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/simulate"
)

func simulateCommand() *command {
	var (
		rate        float64
		duration    time.Duration
		seed        int64
		summaryPath string
		scenario    string
		schedule    string
		startAt     string
		fast        bool
		aggregate   int
		interactive bool
		logEvery    time.Duration
		form        string
		realtime    bool
	)
	return &command{
		name:    "simulate",
		summary: "generate realistic player events and CloudFront logs",
		help: `Viewers in sessions (PLAY, FIRSTFRAME, STREAM, BUFFER, STEP, SEEK, PAUSE,
STOP, ERROR) across videos, apps, devices, connection types, countries and
ISPs send player events to the Kinesis stream exactly as the AWS reference
player SDK sends them (MetricType/TimeStamp, upper-case values, string
numbers, "" and -1 for unknowns, no session id, app or device fields; one
JSON.stringify(event)+"
" per record), or lower-cased as the solution's
Databricks notebooks hold them with --payload-form lowercase. The segment
requests that served them are written as CloudFront standard log files
(gzip, real naming, all 33 fields) to the CDN bucket every --log-every,
with x-edge-request-id (mixed case) equal to the player's cdn_tracking_id.
Each request is also written, at --realtime-sampling-rate percent, as a
CloudFront real-time log record with --realtime-log-fields to the real-time
log stream as it happens, with the CMCD values the session's player sends
(session id, content, bitrate, buffer length, starvation after a stall,
start-up, throughput); --realtime-logs=false leaves them out.

Scenarios: normal, edge-latency (one edge location's latency rises),
app-errors (one app/device type's playback errors rise), isp-buffering (one
ISP's buffering rises), late-cdn-logs (CDN log files arrive hours late).
Set one with --scenario (incidents at once joined by +, as
edge-latency+isp-buffering), a timeline with --schedule 0s=normal,30s=edge-latency,
or type scenario names on standard input with --interactive.

The same --seed and --start give the same output. --summary FILE writes a
JSON account of what was produced, with the true start time, stalls, watch
time, bitrate switches and failures of every session and their totals.`,
		groups: []config.Group{config.Core, config.Resources, config.Realtime},
		flags: func(fs *flag.FlagSet) {
			fs.Float64Var(&rate, "rate", 50, "player events per second, once sessions have built up")
			fs.DurationVar(&duration, "duration", time.Minute, "how long to simulate")
			fs.Int64Var(&seed, "seed", 1, "random seed")
			fs.StringVar(&summaryPath, "summary", "", "write a JSON summary of the output to this file")
			fs.StringVar(&scenario, "scenario", simulate.Normal, "scenario at start: "+strings.Join(simulate.Scenarios, ", "))
			fs.StringVar(&schedule, "schedule", "", "scenario timeline: offset=scenario,...")
			fs.StringVar(&startAt, "start", "", "simulated start time, RFC 3339 (default now)")
			fs.BoolVar(&fast, "fast", false, "generate as fast as possible instead of in real time")
			fs.IntVar(&aggregate, "kpl-aggregate", 0, "pack this many events per Kinesis record, KPL-style (0: one per record)")
			fs.BoolVar(&interactive, "interactive", false, "read scenario names from standard input while running")
			fs.DurationVar(&logEvery, "log-every", 5*time.Second, "simulated time covered by one CDN log file")
			fs.StringVar(&form, "payload-form", simulate.FormSDK, "player event form: sdk (the reference SDK's) or lowercase (the Databricks notebooks')")
			fs.BoolVar(&realtime, "realtime-logs", true, "also write CloudFront real-time log records (at --realtime-sampling-rate, with --realtime-log-fields)")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			if fs.NArg() > 0 {
				return fmt.Errorf("%w: simulate takes no arguments", errUsage)
			}
			if !simulate.ValidForm(form) {
				return fmt.Errorf("%w: --payload-form %q: want %s", errUsage, form, strings.Join(simulate.Forms, " or "))
			}
			if rate <= 0 || duration <= 0 {
				return fmt.Errorf("%w: --rate and --duration must be positive", errUsage)
			}
			start := time.Now()
			if startAt != "" {
				t, err := time.Parse(time.RFC3339, startAt)
				if err != nil {
					return fmt.Errorf("%w: --start: %v", errUsage, err)
				}
				start = t
			}
			steps, err := simulate.ParseSchedule("0s=" + scenario + "," + schedule)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			a, err := m.AWS(ctx)
			if err != nil {
				return err
			}
			cfg := simulate.Config{Seed: seed, Form: form, Start: start, Rate: rate, LogEvery: logEvery, LogPrefix: m.Config.CDNLogPrefix}
			if realtime {
				if cfg.Realtime, err = m.Config.RealtimeLayout(); err != nil {
					return err // validated when the configuration was resolved
				}
				cfg.SamplingRate = m.Config.RealtimeSamplingRate
			}
			g := simulate.New(cfg)
			opts := simulate.RunOptions{Duration: duration, Schedule: steps, Fast: fast}
			if interactive {
				ch := make(chan string, 1)
				go func() {
					sc := bufio.NewScanner(os.Stdin)
					for sc.Scan() {
						ch <- sc.Text()
					}
				}()
				opts.Control = ch
			}
			out := &simulate.AWSOutput{Kinesis: a.Kinesis, S3: a.S3, Stream: m.Config.Stream, RealtimeStream: m.Config.RealtimeStream, Bucket: m.Config.CDNBucket, Aggregate: aggregate}
			m.Logger.Info("simulating", "form", form, "rate", rate, "duration", duration, "seed", seed, "stream", m.Config.Stream, "bucket", m.Config.CDNBucket)
			sum, err := simulate.Run(ctx, g, out, opts)
			if err != nil {
				return err
			}
			b, _ := json.MarshalIndent(sum, "", "  ")
			if summaryPath != "" {
				if err := os.WriteFile(summaryPath, append(b, '\n'), 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(m.Stdout, "simulated %d sessions: %d player events in %d Kinesis records, %d CDN log lines in %d files, %d real-time log records\n",
				sum.Sessions, sum.EventsTotal, sum.KinesisRecords, sum.LogLines, sum.LogFiles, sum.RealtimeRecords)
			return nil
		},
	}
}
