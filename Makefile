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
