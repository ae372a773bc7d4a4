# hal9-lab: the two commands are `make lab` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
GO ?= go
BIN := bin
PROFILE ?= smoke
LAB_FLAGS ?=
GATE_FLAGS ?=
FUZZTIME ?= 10s

.PHONY: help build lab test vet unit fuzz gate dashboards alerts bench bench-server clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

build: ## build bin/hal9 and bin/hal9-lab
	$(GO) build -o $(BIN)/hal9 ./cmd/hal9
	$(GO) build -o $(BIN)/hal9-lab ./cmd/hal9-lab

lab: build ## the lab run (PROFILE=smoke, LAB_FLAGS=...): every backend that can be had, a report in reports/runs/
	$(BIN)/hal9-lab run --profile $(PROFILE) $(LAB_FLAGS)

test: vet unit fuzz alerts ## vet, race-enabled tests, a short fuzz run, promtool checks

vet:
	$(GO) vet ./...

# ristretto's eviction policy sees no access counts under -race (sync.Pool
# drops its read buffers), so the cost-aware eviction test runs without it.
unit:
	$(GO) test -race -timeout 9m ./...
	$(GO) test -count=1 -run '^TestProcessCostAwareEviction$$' ./server/cache/

fuzz: ## short fuzz run of request decoding (FUZZTIME=10s)
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSignalRequest$$' -fuzztime $(FUZZTIME) ./server

gate: build ## nightly performance gate (GATE_FLAGS='--against origin/main'); exit 99 on regression
	$(BIN)/hal9-lab gate --profile nightly $(GATE_FLAGS)

dashboards: ## regenerate dashboards/*.json from the Go generator
	$(GO) run ./dashboards/cmd/gen -out dashboards

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

clean:
	rm -rf $(BIN) data
