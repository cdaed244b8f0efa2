// Package onnxpb holds the Go types of the ONNX model format that the
// exporter writes: ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto, ValueInfoProto, TypeProto, TensorShapeProto,
// OperatorSetIdProto and StringStringEntryProto.
//
// # Source
//
// onnx.proto in this folder is our own subset of the ONNX IR, written from
// the specification with the official message names and field numbers (proto2,
// package onnx), so that marshalled models are ordinary .onnx files readable
// by ONNX Runtime, Triton and the onnx Python package. onnx.pb.go is
// generated from it with protoc and protoc-gen-go v1.36.11; see gen.go for
// the command (make proto). Do not edit onnx.pb.go by hand.
//
// # Determinism
//
// The subset has no map fields, so proto.Marshal writes fields in field-number
// order and repeated fields in slice order: the same messages always give the
// same bytes.
package onnxpb
