package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/provision"
)

func provisionCommand() *command {
	var asJSON, skipTables bool
	return &command{
		name:    "provision",
		summary: "create the AWS resources and tables the pipeline uses (idempotent)",
		help: `Creates what is missing on the configured AWS endpoint: the Kinesis streams
(player events, CloudFront real-time logs),
the CDN log bucket and its event notification (through an SNS topic or
directly to the queue), the queue with its dead-letter queue, the alerts
and updates topics with their subscriptions, the warehouse bucket when the
warehouse is on S3; then the bronze tables. Run it again: it changes
nothing and reports what already existed.`,
		groups: []config.Group{config.Core, config.Tables, config.Resources},
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
			fs.BoolVar(&skipTables, "skip-tables", false, "create only the AWS resources")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			if fs.NArg() > 0 {
				return fmt.Errorf("%w: provision takes no arguments", errUsage)
			}
			a, err := m.AWS(ctx)
			if err != nil {
				return err
			}
			c := m.Config
			p := &provision.Provisioner{Kinesis: a.Kinesis, S3: a.S3, SQS: a.SQS, SNS: a.SNS, Region: a.Config.Region}
			rep, err := p.Run(ctx, provision.Spec{
				Stream:              c.Stream,
				RealtimeStream:      c.RealtimeStream,
				StreamShards:        c.StreamShards,
				StreamOnDemand:      c.StreamOnDemand,
				CDNBucket:           c.CDNBucket,
				CDNLogPrefix:        c.CDNLogPrefix,
				Queue:               c.Queue,
				DeadLetterQueue:     c.DeadLetterQueue(),
				QueueMaxReceives:    c.QueueMaxReceives,
				QueueVisibility:     c.QueueVisibility,
				NotifyVia:           c.NotifyVia,
				S3EventsTopic:       c.S3EventsTopic(),
				RawDelivery:         c.RawDelivery,
				AlertsTopic:         c.AlertsTopic,
				AlertEmails:         c.AlertEmails,
				UpdatesTopic:        c.UpdatesTopic,
				UpdatesExampleQueue: c.UpdatesExampleQueue(),
				WarehouseBucket:     c.WarehouseBucket(),
			})
			if err != nil {
				return err
			}
			if !skipTables {
				tables, err := m.EnsureTables(ctx)
				if err != nil {
					return err
				}
				for _, name := range sortedKeys(tables) {
					rep.Resources = append(rep.Resources, provision.Resource{Kind: "iceberg-table", Name: name, ID: tables[name].Iceberg().Location(), Status: provision.Status(tables[name].Ensured())})
				}
			}
			if asJSON {
				enc := json.NewEncoder(m.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
			for _, r := range rep.Resources {
				fmt.Fprintf(w, "%s\t%s\t%s\n", r.Status, r.Kind, r.Name)
			}
			_ = w.Flush()
			if rep.Changed() {
				fmt.Fprintln(m.Stdout, "provisioned: resources created or updated as listed")
			} else {
				fmt.Fprintln(m.Stdout, "provisioned: everything already existed, nothing changed")
			}
			return nil
		},
	}
}

// topicARN returns the ARN of a topic the configuration names: an ARN as it
// is, else the ARN of the topic of that name, created if it is missing
// (idempotent, as provision creates it). Deployments pass the ARN (the
// CloudFormation template does), so only operator setups — the demo, a
// laptop against the emulator — reach CreateTopic; it lives with the
// operator's code for that reason.
func topicARN(ctx context.Context, api *sns.Client, nameOrARN string) (string, error) {
	if strings.HasPrefix(nameOrARN, "arn:") {
		return nameOrARN, nil
	}
	out, err := api.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(nameOrARN)})
	if err != nil {
		return "", fmt.Errorf("topic %s (pass its ARN where creating topics is not allowed): %w", nameOrARN, err)
	}
	return aws.ToString(out.TopicArn), nil
}
