package infra_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/ingest/cloudfront"
)

// The real-time log configuration asks CloudFront for the fields and the
// sampling rate the pipeline reads its records by: the template's defaults
// are qoslake's, and the task gets the same parameters.
func TestRealtimeLogConfigMatchesThePipeline(t *testing.T) {
	doc := template(t)
	params := find(doc, "Parameters")
	fields := strings.Split(find(find(params, "RealtimeLogFields"), "Default").Value, ",")
	if !slices.Equal(fields, cloudfront.RealtimeFields) {
		t.Errorf("RealtimeLogFields default:\n %v\nwant every documented field in order:\n %v", fields, cloudfront.RealtimeFields)
	}
	if got := find(find(params, "RealtimeSamplingRate"), "Default").Value; got != "100" || config.Default().RealtimeSamplingRate != 100 {
		t.Errorf("RealtimeSamplingRate default %s, qoslake's %d", got, config.Default().RealtimeSamplingRate)
	}
	rlc := find(find(find(doc, "Resources"), "RealtimeLogConfig"), "Properties")
	if got := scalars(find(rlc, "Fields")); !slices.Equal(got, []string{"!Ref RealtimeLogFields"}) {
		t.Errorf("RealtimeLogConfig fields: %v", got)
	}
	if got := scalars(find(rlc, "SamplingRate")); !slices.Equal(got, []string{"!Ref RealtimeSamplingRate"}) {
		t.Errorf("RealtimeLogConfig sampling rate: %v", got)
	}
	env := map[string]string{}
	task := find(find(find(doc, "Resources"), "PipelineTask"), "Properties")
	for _, c := range find(task, "ContainerDefinitions").Content {
		for _, e := range find(c, "Environment").Content {
			v := find(e, "Value")
			env[find(e, "Name").Value] = v.Tag + " " + v.Value
			if len(v.Content) > 0 { // !Join [",", !Ref X]
				env[find(e, "Name").Value] = v.Tag + " " + strings.Join(scalars(v), " ")
			}
		}
	}
	if env["QOSLAKE_REALTIME_SAMPLING_RATE"] != "!Ref RealtimeSamplingRate" || env["QOSLAKE_REALTIME_LOG_FIELDS"] != "!Join , !Ref RealtimeLogFields" {
		t.Errorf("task environment: %q, %q", env["QOSLAKE_REALTIME_SAMPLING_RATE"], env["QOSLAKE_REALTIME_LOG_FIELDS"])
	}
}

// The pipeline reads both streams: each Kinesis read action it calls is
// allowed on the player-events stream and on the real-time log stream, and
// CloudFront's role may only write to the real-time one.
func TestTaskRoleReadsBothStreams(t *testing.T) {
	called := calledActions(t)
	on := map[string]map[string]bool{}
	for _, st := range taskRolePolicy(t) {
		for _, a := range st.Actions {
			for _, r := range st.Resources {
				if on[a] == nil {
					on[a] = map[string]bool{}
				}
				on[a][r] = true
			}
		}
	}
	for a := range called {
		if !strings.HasPrefix(a, "kinesis:") {
			continue
		}
		for _, stream := range []string{"!GetAtt PlayerEventsStream.Arn", "!GetAtt RealtimeLogsStream.Arn"} {
			if !on[a][stream] {
				t.Errorf("the task role does not allow %s on %s", a, stream)
			}
		}
	}
	role := find(find(find(template(t), "Resources"), "RealtimeLogRole"), "Properties")
	for _, pol := range find(role, "Policies").Content {
		for _, st := range find(find(pol, "PolicyDocument"), "Statement").Content {
			if got := scalars(find(st, "Resource")); !slices.Equal(got, []string{"!GetAtt RealtimeLogsStream.Arn"}) {
				t.Errorf("CloudFront's role reaches %v", got)
			}
			for _, a := range scalars(find(st, "Action")) {
				if !strings.HasPrefix(a, "kinesis:Describe") && !strings.HasPrefix(a, "kinesis:Put") {
					t.Errorf("CloudFront's role may %s", a)
				}
			}
		}
	}
}

// template is the template's top-level mapping.
func template(t *testing.T) *yaml.Node {
	t.Helper()
	b, err := os.ReadFile("qoslake.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}
