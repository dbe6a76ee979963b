package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The LocalStack init hook, run with the AWS CLI against the emulator,
// creates everything the pipeline needs: a short pipeline run on those
// resources alone (no `qoslake provision`) lands the simulated traffic in
// bronze. A second run of the hook changes nothing.
func TestLocalStackInitScriptCreatesWhatThePipelineNeeds(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the AWS CLI is required in CI")
		}
		t.Skip("no AWS CLI")
	}
	s := newBareStack(t)
	hook := func() string {
		t.Helper()
		cmd := exec.Command("bash", "../../localstack/init/ready.d/10-qoslake.sh")
		cmd.Env = append(os.Environ(), "AWSLOCAL=aws", "QOSLAKE_PREFIX="+s.env["QOSLAKE_PREFIX"], "QOSLAKE_QUEUE_VISIBILITY_SECONDS=3")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("init hook: %v\n%s", err, out)
		}
		return string(out)
	}
	first := hook()
	if !strings.Contains(first, "created kinesis-stream") || !strings.Contains(first, "done") {
		t.Fatalf("init hook output:\n%s", first)
	}
	if again := hook(); strings.Contains(again, "created") {
		t.Errorf("second run created resources:\n%s", again)
	}

	sum := s.simulate("--rate", "200", "--duration", "15s", "--seed", "5")
	s.mustRun("run", "--once")
	s.checkExactlyOnce(sum.EventsTotal, sum.LogLines)
}
