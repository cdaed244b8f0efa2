package onnxpb

// Regenerate onnx.pb.go with the pinned protoc-gen-go (make proto):
//
//	GOBIN=$(pwd)/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
//	go generate ./internal/onnxpb

//go:generate protoc --plugin=protoc-gen-go=../../bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative onnx.proto
