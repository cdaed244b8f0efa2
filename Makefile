# kronos-gateway — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin

# ONNX Runtime CPU library, taken from the npm package onnxruntime-node (pinned).
ORT_NPM_VERSION ?= 1.24.3
ORT_DIR := $(CURDIR)/third_party/onnxruntime
ORT_LIB := $(ORT_DIR)/libonnxruntime.so.1
export KRONOS_ORT_LIB ?= $(ORT_LIB)

# Code generators (pinned).
PROTOC_GEN_GO_VERSION ?= v1.36.11
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.1

.DEFAULT_GOAL := help

##@ General
.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Dependencies
.PHONY: ort
ort: $(ORT_LIB) ## Extract libonnxruntime.so.1 from the npm package onnxruntime-node.

$(ORT_LIB):
	@mkdir -p $(ORT_DIR)/npm
	cd $(ORT_DIR)/npm && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save --no-audit --no-fund --ignore-scripts onnxruntime-node@$(ORT_NPM_VERSION) >/dev/null
	cp $(ORT_DIR)/npm/node_modules/onnxruntime-node/bin/napi-v6/linux/$$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')/libonnxruntime.so.1 $(ORT_LIB)
	rm -rf $(ORT_DIR)/npm
	@echo "ONNX Runtime $(ORT_NPM_VERSION) -> $(ORT_LIB)"

##@ Build and run
.PHONY: build
build: ## Build the binaries into ./bin.
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: run
run: ort ## Serve forecasts from the default model repository (kronos-nano) on :8000.
	$(GO) build -o $(BIN)/kronos-gateway ./cmd/kronos-gateway
	@trap 'exit 0' INT TERM; $(BIN)/kronos-gateway

.PHONY: export
export: ## Re-export the default model (kronos-nano) into model_repository/.
	$(GO) run ./cmd/kronos-export --tokenizer models/kronos-nano/tokenizer --predictor models/kronos-nano/predictor \
		--name kronos-nano --max-context 256 --out model_repository

.PHONY: export-hub
export-hub: ## Export NeoQuasar/Kronos-small from the Hugging Face hub (needs network).
	$(GO) run ./cmd/kronos-export --tokenizer NeoQuasar/Kronos-Tokenizer-base --predictor NeoQuasar/Kronos-small \
		--name kronos-small --max-context 512 --out model_repository

##@ Test
.PHONY: test
test: ort ## Run all tests (unit, conformance subset, HTTP) with the race detector.
	$(GO) test -race -count=1 ./...

.PHONY: conformance
SHARED ?= ../shared
conformance: ort ## Run the conformance runner on the full vector sets in $(SHARED) (SHARED=dir to change).
	$(GO) run ./cmd/kronos-conformance $(SHARED)/conformance $(SHARED)/conformance-nano

.PHONY: bench
bench: ort ## Run the Go benchmarks once each (smoke); see BENCHMARKS.md for the recorded runs.
	$(GO) test -run '^$$' -bench . -benchtime=1x ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target briefly (FUZZTIME: a duration or an iteration count like 3000x; default 10s each).
	@./scripts/fuzz.sh $${FUZZTIME:-10s}

##@ Generated code
.PHONY: proto proto-check
proto: ## Regenerate the protobuf code (ONNX subset, KServe v2 subset) with the pinned generators.
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	$(GO) generate ./internal/onnxpb ./triton/inferencepb

proto-check: proto ## Fail when the generated protobuf code drifts from the .proto files.
	git diff --exit-code -- internal/onnxpb triton/inferencepb

##@ Ops
COMPOSE := docker compose -f compose/docker-compose.yml
PROFILE ?= embedded
.PHONY: up down logs load rules-check test-opsstack triton-check
up: ## Start the ops stack (PROFILE=embedded|cpu|gpu; needs compose/.env from .env.example).
	$(COMPOSE) --profile $(PROFILE) up -d --build
down: ## Stop the ops stack.
	$(COMPOSE) --profile $(PROFILE) down
logs: ## Follow the ops stack's logs.
	$(COMPOSE) --profile $(PROFILE) logs -f
load: ## Headless load test: make load SCENARIO=steady URL=http://127.0.0.1:8000 [DURATION=5m]
	@test -n "$(SCENARIO)" -a -n "$(URL)" || { echo "usage: make load SCENARIO=steady|stress|spike|endurance URL=http://... [DURATION=5m]"; exit 2; }
	locust/run.sh $(SCENARIO) $(URL) $(DURATION)
rules-check: ## promtool: scrape config, alert rules, rule unit tests.
	promtool check config prometheus/prometheus.yml
	promtool check rules prometheus/rules/*.yml
	promtool test rules prometheus/tests/*.yml
test-opsstack: ort ## End to end: gateway + Prometheus, every dashboard query, 30 s Locust smoke (~1 min).
	$(GO) test -tags opsstack -count=1 -v ./grafana/
triton-check: ort ## Parity and load checks against a real Triton (TRITON_URL=host:8001) or the in-process fake.
	scripts/triton-check.sh $(or $(TRITON_URL),--self-test)

##@ Verify
.PHONY: verify
verify: ## gofmt, go vet, go mod tidy and generated-code drift checks.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...
	$(GO) vet -tags opsstack ./grafana/
	$(GO) vet -tags integration ./triton/
	$(GO) mod tidy -diff
