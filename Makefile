# hal9-lab: the two commands are `make lab` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
GO ?= go
BIN := bin
PROFILE ?= smoke
LAB_FLAGS ?=
GATE_FLAGS ?=
CAPACITY_CHECK ?= 25,50,100,200
FUZZTIME ?= 10s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE ?= hal9-lab/hal9:$(VERSION)

.PHONY: help build lab capacity capacity-check test vet unit fuzz gate dashboards alerts manifests bench image image-context clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

build: ## build bin/hal9 and bin/hal9-lab
	$(GO) build -o $(BIN)/hal9 ./cmd/hal9
	$(GO) build -o $(BIN)/hal9-lab ./cmd/hal9-lab

lab: build ## the lab run (PROFILE=smoke, LAB_FLAGS=...): every backend that can be had, a report in reports/runs/
	$(BIN)/hal9-lab run --profile $(PROFILE) $(LAB_FLAGS)

capacity: build ## the knee per backend, its service demands, USL fit and fleet projection (PROFILE=capacity, ~12 min)
	$(BIN)/hal9-lab run --profile capacity $(LAB_FLAGS)

capacity-check: ## the knee search against queues of known capacity (CAPACITY_CHECK=25,50,100,200 req/s; ~1.5 min each)
	HAL9_CAPACITY_CHECK=$(CAPACITY_CHECK) $(GO) test -count=1 -timeout 30m -run '^TestCapacityCheck$$' -v ./lab/capacity/

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

manifests: ## regenerate deploy/kubernetes's generated files (PrometheusRule, dashboard and scenario ConfigMaps)
	$(GO) run ./deploy/kubernetes/gen

alerts: ## promtool check and test the alert and recording rules
	promtool check rules alerts/*.rules.yml
	promtool test rules alerts/tests/*.yml

bench: build ## Go benchmarks (server, cache, store, engine) and the engine vs wrk
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(BIN)/hal9-lab bench engine

image: build image-context ## the server's image $(IMAGE) FROM scratch, built through the Docker engine API
	$(BIN)/hal9-lab infra images --server --dockerfile Dockerfile --context $(BIN)/image --tag $(IMAGE)

# The build context of Dockerfile: static binaries, passwd/group of the
# unprivileged user hal9 (65532), CA certificates, /data and /tmp.
image-context:
	rm -rf $(BIN)/image
	mkdir -p $(BIN)/image/etc/ssl/certs $(BIN)/image/data $(BIN)/image/tmp
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/image/hal9 ./cmd/hal9
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/image/hal9-lab ./cmd/hal9-lab
	printf 'root:x:0:0:root:/root:/sbin/nologin\nhal9:x:65532:65532:hal9:/data:/sbin/nologin\n' > $(BIN)/image/etc/passwd
	printf 'root:x:0:\nhal9:x:65532:\n' > $(BIN)/image/etc/group
	if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt $(BIN)/image/etc/ssl/certs/; else touch $(BIN)/image/etc/ssl/certs/ca-certificates.crt; fi
	chmod 1777 $(BIN)/image/tmp

clean:
	rm -rf $(BIN) data
