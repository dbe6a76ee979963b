# qoslake — make demo | make test | make bench
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO            ?= go
EMULATOR_PORT ?= 5055
# The demo's catalog and warehouse live with the emulator: a fresh emulator
# (new streams, new sequence numbers) starts with fresh tables.
STATE_DIR     ?= .emulator/state
BIN           := bin/qoslake

# The local emulator accepts any credentials; real AWS ignores these defaults
# when a profile or role provides its own (the SDK chain decides).
export AWS_REGION            ?= us-east-1
export AWS_ACCESS_KEY_ID     ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export EMULATOR_PORT
export EMULATOR_DIR ?= .emulator
EMULATOR_URL := $(or $(AWS_ENDPOINT_URL),http://127.0.0.1:$(EMULATOR_PORT))

.PHONY: help build test check-format vet check-generated lint-infra unit emulator-up emulator-down demo bench clean

help:
	@echo "make demo           local AWS emulator, provision, simulate traffic, bronze, silver and gold, list the tables"
	@echo "make test           format, vet, generated-code check, all tests against the emulator"
	@echo "make bench          Go benchmarks (benchstat-ready output in bench.txt)"
	@echo "make emulator-up    start moto_server on 127.0.0.1:$(EMULATOR_PORT) (or use AWS_ENDPOINT_URL)"
	@echo "make emulator-down  stop the emulator this folder started"

# A static binary (no cgo: the SQLite driver is pure Go), reproducible paths.
# The Dockerfile runs this same target.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/qoslake

emulator-up:
	@./scripts/emulator.sh up

emulator-down:
	@./scripts/emulator.sh down

check-format:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Generated templ code must be committed and current.
check-generated:
	@if ls $$(git ls-files '*.templ' 2>/dev/null) >/dev/null 2>&1 && [ -n "$$(git ls-files '*.templ')" ]; then \
		$(GO) tool templ generate >/dev/null && \
		git diff --exit-code --stat -- '*_templ.go' || { echo "generated templ code is stale: run 'go tool templ generate' and commit"; exit 1; }; \
	fi

# Tests run against the emulator; its exit code is kept while the emulator is
# stopped afterwards. Under CI=true a missing moto_server fails the run
# (testenv also fails wire tests without AWS_ENDPOINT_URL).
# cfn-lint checks the CloudFormation template when it is installed (it is on
# the development and CI machines; CI=true makes its absence a failure).
lint-infra:
	@if command -v cfn-lint >/dev/null 2>&1; then cfn-lint infra/*.yaml && echo "cfn-lint: infra/*.yaml clean"; \
	elif [ "$${CI:-}" = "true" ]; then echo "CI: cfn-lint is required" >&2; exit 1; \
	else echo "cfn-lint not installed: template not linted" >&2; fi

test: check-format vet check-generated lint-infra
	@started=0; ours=1; \
	if ./scripts/emulator.sh status; then ours=0; fi; \
	if ./scripts/emulator.sh up; then started=1; \
	elif [ "$${CI:-}" = "true" ]; then echo "CI: the local AWS emulator is required" >&2; exit 1; \
	else echo "no emulator: wire tests will be skipped" >&2; fi; \
	rc=0; \
	if [ $$started = 1 ]; then export AWS_ENDPOINT_URL=$(EMULATOR_URL); fi; \
	$(GO) test -race -count=1 -timeout 12m ./... || rc=$$?; \
	if [ $$ours = 1 ]; then ./scripts/emulator.sh down; fi; \
	exit $$rc

unit:
	$(GO) test -count=1 ./...

# Demo mode: the public pseudonymisation key, and GeoIP databases for the
# simulator's address ranges (use MaxMind's in production).
demo: build emulator-up
	@export AWS_ENDPOINT_URL=$(EMULATOR_URL) QOSLAKE_STATE_DIR=$(STATE_DIR) QOSLAKE_DEMO=true \
		QOSLAKE_GEOIP_CITY=$(STATE_DIR)/geoip/qoslake-demo-City.mmdb QOSLAKE_GEOIP_ASN=$(STATE_DIR)/geoip/qoslake-demo-ASN.mmdb; \
	$(BIN) demo-geoip $(STATE_DIR)/geoip >/dev/null; \
	printf 'export AWS_ENDPOINT_URL=%s AWS_REGION=%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s\nexport QOSLAKE_STATE_DIR=%s QOSLAKE_DEMO=true QOSLAKE_GEOIP_CITY=%s QOSLAKE_GEOIP_ASN=%s\n' \
		"$$AWS_ENDPOINT_URL" "$$AWS_REGION" "$$AWS_ACCESS_KEY_ID" "$$AWS_SECRET_ACCESS_KEY" "$$QOSLAKE_STATE_DIR" "$$QOSLAKE_GEOIP_CITY" "$$QOSLAKE_GEOIP_ASN" > $(STATE_DIR)/demo.env; \
	echo "== provisioning on $$AWS_ENDPOINT_URL"; \
	$(BIN) provision; \
	echo; echo "== simulating a minute of traffic (player events and CloudFront real-time logs to Kinesis, CloudFront log files to S3)"; \
	$(BIN) simulate --rate 300 --duration 60s --fast --schedule 20s=edge-latency,40s=normal --summary $(STATE_DIR)/simulation.json; \
	echo; echo "== ingesting to bronze, refining to silver and gold, judging the alert rules, publishing updates (run --once)"; \
	$(BIN) run --once; \
	echo; echo "== tables"; \
	$(BIN) tables; \
	echo; \
	echo "The local stack is up: emulator at $$AWS_ENDPOINT_URL, catalog and warehouse in $(STATE_DIR)."; \
	echo "Its settings are in $(STATE_DIR)/demo.env. Try:"; \
	echo "  . $(STATE_DIR)/demo.env && $(BIN) scan gold.sessions --limit 5"; \
	echo "  . $(STATE_DIR)/demo.env && $(BIN) alerts list     # and: alerts backtest --since 24h"; \
	echo "  . $(STATE_DIR)/demo.env && $(BIN) run        # continuous; and in another shell:"; \
	echo "  . $(STATE_DIR)/demo.env && $(BIN) simulate --rate 50 --duration 10m --interactive"; \
	echo "Stop the emulator with: make emulator-down"

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./... | tee bench.txt

clean: emulator-down
	rm -rf $(BIN) $(STATE_DIR) bench.txt
