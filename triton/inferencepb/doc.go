// Package inferencepb holds the Go types and gRPC stubs of the KServe v2 /
// Triton inference protocol subset that kronos-gateway uses
// (inference.proto in this folder: package inference, service
// GRPCInferenceService, with Triton's message names and field numbers; only
// the RPCs and ModelConfig fields the gateway needs).
//
// inference.proto is written for this repository from the protocol
// specification; it is not a copy of Triton's .proto files. inference.pb.go
// and inference_grpc.pb.go are generated from it by protoc 3.21.12 with
// protoc-gen-go v1.36.11 and protoc-gen-go-grpc v1.6.1 (see gen.go; `make
// proto`); do not edit them by hand. wire_test.go checks the field numbers
// against bytes written from the specification.
//
// Health checks use google.golang.org/grpc/health/grpc_health_v1 (Triton
// registers the standard service); it is deliberately not generated here.
package inferencepb
