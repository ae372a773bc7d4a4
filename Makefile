# hal9-lab: the two commands are `make lab` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
GO ?= go
BIN := bin
PROFILE ?= smoke
LAB_FLAGS ?=
GATE_FLAGS ?=
GATE_PROFILE ?= nightly
GATE_STAMP := $(shell date -u +%Y%m%dT%H%M%SZ)
GATE_OUT ?= reports/runs/$(GATE_STAMP)
CAPACITY_CHECK ?= 25,50,100,200
CAPACITY_CHECK_DEFAULTS ?= 800,1600,3000
FUZZTIME ?= 10s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE ?= hal9-lab/hal9:$(VERSION)

.PHONY: help build lab capacity capacity-check test vet unit fuzz gate gate-trials soak chaos dashboards alerts manifests bench bench-server image image-context clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# hal9 without cgo: the binary the lab runs as a process is the one its
# --server container image holds (FROM scratch, no libc).
build: ## build bin/hal9 and bin/hal9-lab
	CGO_ENABLED=0 $(GO) build -o $(BIN)/hal9 ./cmd/hal9
	$(GO) build -o $(BIN)/hal9-lab ./cmd/hal9-lab

lab: build ## the lab run (PROFILE=smoke, LAB_FLAGS=...): every backend that can be had, a report in reports/runs/
	$(BIN)/hal9-lab run --profile $(PROFILE) $(LAB_FLAGS)

capacity: build ## the knee per backend, its service demands, USL fit and fleet projection (PROFILE=capacity, ~12 min)
	$(BIN)/hal9-lab run --profile capacity $(LAB_FLAGS)

capacity-check: ## the knee search against queues of known capacity: fixed steps (CAPACITY_CHECK=25,50,100,200 req/s, ~1.5 min each), default flags with p99<50 ms (CAPACITY_CHECK_DEFAULTS=800,1600,3000, ≤ 4 min each)
	HAL9_CAPACITY_CHECK=$(CAPACITY_CHECK) HAL9_CAPACITY_CHECK_DEFAULTS=$(CAPACITY_CHECK_DEFAULTS) $(GO) test -count=1 -timeout 40m -run '^TestCapacityCheck(Defaults)?$$' -v ./lab/capacity/

# promtool's checks run inside unit (alerts.TestPromtool runs what `make
# alerts` runs), so test does not run them a second time.
test: vet unit fuzz ## vet, race-enabled tests (promtool's rule checks among them), a short fuzz run

vet:
	$(GO) vet ./...

# ristretto's eviction policy sees no access counts under -race (sync.Pool
# drops its read buffers), so the cost-aware eviction test runs without it.
unit:
	$(GO) test -race -timeout 9m ./...
	$(GO) test -count=1 -run '^TestProcessCostAwareEviction$$' ./server/cache/

fuzz: ## short fuzz run of request decoding (FUZZTIME=10s)
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSignalRequest$$' -fuzztime $(FUZZTIME) ./server

# The gate, then its runs added to the history ($$HAL9_HISTORY, default
# reports/history.db) and the history checked: the gate's report gains a
# History section (the change points among each series' last 5 nights),
# and trend.html and history.json land beside it in GATE_OUT. Exit: the
# gate's code when it is not 0, else the check's (99: a series changed for
# the worse within its last 5 nights).
gate: build ## nightly performance gate (GATE_FLAGS='--against origin/main', GATE_OUT=dir), then the history's check; exit 99 on a regression of either
	@rc=0; $(BIN)/hal9-lab gate --profile $(GATE_PROFILE) --out $(GATE_OUT) $(GATE_FLAGS) || rc=$$?; \
	if [ -f $(GATE_OUT)/summary.json ] && [ $$rc -ne 130 ]; then \
	  $(BIN)/hal9-lab history add $(GATE_OUT); \
	  h=0; $(BIN)/hal9-lab history check --profile $(GATE_PROFILE) --summary-export $(GATE_OUT)/history.json --gate-report $(GATE_OUT) || h=$$?; \
	  if [ $$rc -eq 0 ]; then rc=$$h; fi; \
	fi; exit $$rc

chaos: build ## the chaos profile (~30 min): every fault under load on PostgreSQL + Redis, with Prometheus and the real alerts; exit 99 when a fault's verdict fails or an acknowledged write is lost
	$(BIN)/hal9-lab run --profile chaos --prometheus $(LAB_FLAGS)

soak: build ## the seeds' hour (~67 min): 1,500 users on PostgreSQL + Redis, durable; exit 99 when a threshold fails
	$(BIN)/hal9-lab run --profile soak --require-all $(LAB_FLAGS)

# The gate's own power (TestGateTrials): GATE_TRIALS gates per LLM slowdown
# (A/A, +10 %, +25 %), each 4 + 4 interleaved runs of
# lab/testdata/gate-profile.yaml (3 s of L4 signals on SQLite, about 40 s a
# gate; HAL9_GATE_PROFILE names another); the rates with their 95 %
# intervals go to the test log.
GATE_TRIALS ?= 40
gate-trials: ## the gate's A/A false-alarm and slowdown catch rates (GATE_TRIALS=40 gates each, ~40 s per gate)
	HAL9_GATE_TRIALS=$(GATE_TRIALS) HAL9_GATE_SLOWDOWNS=1.1,1.25 $(GO) test -count=1 -timeout 24h -run '^TestGateTrials$$' -v ./lab/

dashboards: ## regenerate dashboards/*.json from the Go generator
	$(GO) run ./dashboards/cmd/gen -out dashboards

manifests: ## regenerate deploy/kubernetes's generated files (PrometheusRule, dashboard and scenario ConfigMaps)
	$(GO) run ./deploy/kubernetes/gen

alerts: ## promtool check and test the alert and recording rules
	promtool check rules alerts/*.rules.yml
	promtool test rules alerts/tests/*.yml

BENCH_FLAGS ?=

bench: build ## Go benchmarks (server, cache, store, engine), the engine vs wrk, and bench-server
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(BIN)/hal9-lab bench engine
	$(MAKE) bench-server

bench-server: build ## wrk and 3,500-user measurements of bin/hal9 (BENCH_FLAGS='--hal9 OLD,bin/hal9 --only sqlite,pg,flood,mix')
	scripts/bench-server.sh $(BENCH_FLAGS)

# The build context (static hal9 and hal9-lab, passwd/group of the
# unprivileged user hal9 (65532), CA certificates, /data and /tmp) is staged
# by hal9-lab (build.Stage in lab/build), the same code the lab's
# --server container builds its images with.
image: build ## the server's image $(IMAGE) FROM scratch, built through the Docker engine API
	$(BIN)/hal9-lab infra images --server --version $(VERSION) --tag $(IMAGE) --context $(BIN)/image

image-context: build ## stage the image's build context in bin/image (for docker build by hand)
	$(BIN)/hal9-lab infra images --server --stage-only --version $(VERSION) --context $(BIN)/image

clean:
	rm -rf $(BIN) data
