// Package infra_test checks the CloudFormation template against the code:
// the pipeline's IAM policy allows exactly the AWS API actions the code
// calls, derived from the Go source, on this deployment's resources only.
package infra_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// services maps the SDK packages the code uses to IAM service prefixes.
var services = map[string]string{
	"github.com/aws/aws-sdk-go-v2/service/kinesis": "kinesis",
	"github.com/aws/aws-sdk-go-v2/service/s3":      "s3",
	"github.com/aws/aws-sdk-go-v2/service/sqs":     "sqs",
	"github.com/aws/aws-sdk-go-v2/service/sns":     "sns",
	"github.com/aws/aws-sdk-go-v2/service/glue":    "glue",

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager": "secretsmanager",
}

// actionFor names the IAM action of an API operation where they differ.
var actionFor = map[string]string{
	"sqs:DeleteMessageBatch":                "sqs:DeleteMessage",
	"sns:PublishBatch":                      "sns:Publish", // PublishBatch is authorised as sns:Publish
	"sqs:SendMessageBatch":                  "sqs:SendMessage",
	"sqs:ChangeMessageVisibilityBatch":      "sqs:ChangeMessageVisibility",
	"s3:HeadObject":                         "s3:GetObject",
	"s3:HeadBucket":                         "s3:ListBucket",
	"s3:ListObjectsV2":                      "s3:ListBucket",
	"s3:GetBucketNotificationConfiguration": "s3:GetBucketNotification",
	"s3:PutBucketNotificationConfiguration": "s3:PutBucketNotification",
	"s3:CreateMultipartUpload":              "s3:PutObject",
	"s3:UploadPart":                         "s3:PutObject",
	"s3:CompleteMultipartUpload":            "s3:PutObject",
	"s3:DeleteObjects":                      "s3:DeleteObject",
	"s3:CopyObject":                         "s3:PutObject",
}

// Operator-only code: provisioning and the simulator run with an
// operator's credentials, not in the deployed pipeline, so their calls do
// not belong in the task role.
var operatorOnly = []string{"provision/", "simulate/", "internal/testenv/", "cmd/qoslake/provision.go", "cmd/qoslake/simulate.go"}

// Actions made by libraries on the code's behalf, which the Go source of
// this repository does not spell out.
var libraryActions = map[string]string{
	// iceberg-go's S3 FileIO (gocloud s3blob) for the warehouse.
	"s3:GetObject":            "read table metadata and data files",
	"s3:PutObject":            "write table metadata and data files (multipart uploads included)",
	"s3:AbortMultipartUpload": "abandon a failed multipart upload",
	"s3:DeleteObject":         "snapshot expiry, orphan removal, old metadata files",
	"s3:ListBucket":           "orphan removal lists the table locations",
	// iceberg-go's Glue catalog.
	"glue:CreateDatabase": "create the bronze, silver, gold namespaces",
	"glue:GetDatabases":   "list namespaces (tables, maintain)",
	"glue:CreateTable":    "create a table",
	"glue:GetTable":       "load a table",
	"glue:GetTables":      "list tables (tables, maintain)",
	"glue:UpdateTable":    "commit a snapshot (optimistic, versioned)",
	// SSE-KMS on the buckets: S3 decrypts and generates data keys as the caller.
	"kms:Decrypt":         "read objects encrypted with the data key",
	"kms:GenerateDataKey": "write objects encrypted with the data key",
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// calledActions returns the IAM actions of the SDK operations the runtime
// code calls: every "<service>.<Operation>Input" it builds.
func calledActions(t *testing.T) map[string][]string {
	t.Helper()
	root := repoRoot(t)
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		for _, p := range operatorOnly {
			if strings.HasPrefix(filepath.ToSlash(rel), p) {
				return nil
			}
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		imports := map[string]string{}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			svc, ok := services[p]
			if !ok {
				continue
			}
			name := p[strings.LastIndex(p, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			imports[name] = svc
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			svc, ok := imports[pkg.Name]
			op, isInput := strings.CutSuffix(sel.Sel.Name, "Input")
			if !ok || !isInput {
				return true
			}
			action := svc + ":" + op
			if a, ok := actionFor[action]; ok {
				action = a
			}
			out[action] = append(out[action], filepath.ToSlash(rel))
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// policy is one IAM statement of the template.
type statement struct {
	Sid       string
	Actions   []string
	Resources []string
}

func taskRolePolicy(t *testing.T) []statement {
	t.Helper()
	b, err := os.ReadFile("qoslake.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	role := find(find(find(doc.Content[0], "Resources"), "TaskRole"), "Properties")
	var out []statement
	for _, pol := range find(role, "Policies").Content {
		for _, st := range find(find(pol, "PolicyDocument"), "Statement").Content {
			s := statement{Sid: find(st, "Sid").Value}
			s.Actions = scalars(find(st, "Action"))
			s.Resources = scalars(find(st, "Resource"))
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatal("no statements in the task role's policy")
	}
	return out
}

// find returns a mapping node's value for key (an empty node if absent).
func find(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	}
	return &yaml.Node{}
}

// scalars flattens a scalar or a sequence; tagged values (!Sub, !GetAtt)
// are kept as tag plus text.
func scalars(n *yaml.Node) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			return []string{n.Tag + " " + n.Value}
		}
		return []string{n.Value}
	case yaml.SequenceNode:
		var out []string
		for _, c := range n.Content {
			out = append(out, scalars(c)...)
		}
		return out
	}
	return nil
}

func TestTaskRoleAllowsExactlyWhatTheCodeCalls(t *testing.T) {
	called := calledActions(t)
	if len(called) < 5 {
		t.Fatalf("found only %v in the code: the scan is broken", called)
	}
	need := map[string]string{}
	for a, files := range called {
		need[a] = "called in " + strings.Join(slices.Compact(slices.Sorted(slices.Values(files))), ", ")
	}
	for a, why := range libraryActions {
		if _, ok := need[a]; !ok {
			need[a] = why
		}
	}
	allowed := map[string]bool{}
	for _, st := range taskRolePolicy(t) {
		for _, a := range st.Actions {
			if strings.Contains(a, "*") {
				t.Errorf("statement %s allows a wildcard action %s", st.Sid, a)
			}
			allowed[a] = true
		}
		for _, r := range st.Resources {
			if r == "*" {
				t.Errorf("statement %s applies to every resource", st.Sid)
			}
		}
	}
	for a, why := range need {
		if !allowed[a] {
			t.Errorf("the task role does not allow %s (%s)", a, why)
		}
	}
	for a := range allowed {
		if _, ok := need[a]; !ok {
			t.Errorf("the task role allows %s, which the code never calls", a)
		}
	}
}

// The scan itself must see calls: the ingest path's are known.
func TestActionScanFindsIngestCalls(t *testing.T) {
	called := calledActions(t)
	for _, a := range []string{"kinesis:GetRecords", "kinesis:ListShards", "sqs:ReceiveMessage", "sqs:DeleteMessage", "s3:GetObject"} {
		if _, ok := called[a]; !ok {
			t.Errorf("scan missed %s", a)
		}
	}
	for _, a := range []string{"kinesis:CreateStream", "kinesis:PutRecords"} {
		if files, ok := called[a]; ok {
			t.Errorf("operator-only %s counted for the pipeline (%v)", a, files)
		}
	}
}
