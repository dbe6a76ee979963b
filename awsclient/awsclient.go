// Package awsclient builds AWS SDK clients from the SDK's standard
// configuration chain, adding only what local emulators need: path-style S3
// addressing when a custom S3 endpoint is configured.
package awsclient

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Clients are the AWS service clients qoslake uses.
type Clients struct {
	Config  aws.Config
	Kinesis *kinesis.Client
	S3      *s3.Client
	SQS     *sqs.Client
	SNS     *sns.Client
	Glue    *glue.Client
}

// Load reads the standard AWS configuration (environment, shared files,
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>) and builds the clients.
func Load(ctx context.Context) (*Clients, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("AWS region not set: set AWS_REGION or a profile's region")
	}
	return New(cfg), nil
}

// New builds the clients from a loaded configuration.
func New(cfg aws.Config) *Clients {
	pathStyle := S3Endpoint(cfg) != ""
	return &Clients{
		Config:  cfg,
		Kinesis: kinesis.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) {
			// Emulators serve every bucket on one host.
			o.UsePathStyle = pathStyle
			// Emulators send no response checksums; that is not worth a log line per object.
			o.DisableLogOutputChecksumValidationSkipped = true
		}),
		SQS:  sqs.NewFromConfig(cfg),
		SNS:  sns.NewFromConfig(cfg),
		Glue: glue.NewFromConfig(cfg),
	}
}

// S3Endpoint returns the custom S3 endpoint, or "" for AWS itself. The
// Iceberg FileIO builds its own S3 client and needs it spelled out.
func S3Endpoint(cfg aws.Config) string {
	if v := os.Getenv("AWS_ENDPOINT_URL_S3"); v != "" {
		return v
	}
	if cfg.BaseEndpoint != nil {
		return *cfg.BaseEndpoint
	}
	return ""
}
