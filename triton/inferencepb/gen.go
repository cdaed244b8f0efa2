package inferencepb

// Regenerate inference.pb.go and inference_grpc.pb.go with the pinned
// generators (make proto): protoc 3.21.12 (Debian protobuf-compiler),
//
//	GOBIN=$(pwd)/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
//	GOBIN=$(pwd)/bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.1
//	go generate ./triton/inferencepb

//go:generate protoc --plugin=protoc-gen-go=../../bin/protoc-gen-go --plugin=protoc-gen-go-grpc=../../bin/protoc-gen-go-grpc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative inference.proto
