package onnxpb

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestWireFormat pins field numbers and wire types against bytes written by
// hand from the ONNX IR specification, so a wrong field number in onnx.proto
// cannot go unnoticed.
func TestWireFormat(t *testing.T) {
	tests := []struct {
		name string
		msg  proto.Message
		want []byte
	}{
		{"model ir_version", &ModelProto{IrVersion: proto.Int64(8)}, []byte{0x08, 0x08}},
		{"model producer_name", &ModelProto{ProducerName: proto.String("k")}, []byte{0x12, 0x01, 'k'}},
		{"model opset_import", &ModelProto{OpsetImport: []*OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}}},
			[]byte{0x42, 0x04, 0x0a, 0x00, 0x10, 0x11}},
		{"model graph", &ModelProto{Graph: &GraphProto{Name: proto.String("g")}}, []byte{0x3a, 0x03, 0x12, 0x01, 'g'}},
		{"model metadata_props", &ModelProto{MetadataProps: []*StringStringEntryProto{{Key: proto.String("a"), Value: proto.String("b")}}},
			[]byte{0x72, 0x06, 0x0a, 0x01, 'a', 0x12, 0x01, 'b'}},
		{"graph node/initializer/input/output", &GraphProto{
			Node:        []*NodeProto{{OpType: proto.String("Relu")}},
			Initializer: []*TensorProto{{Name: proto.String("w")}},
			Input:       []*ValueInfoProto{{Name: proto.String("x")}},
			Output:      []*ValueInfoProto{{Name: proto.String("y")}},
		}, []byte{0x0a, 0x06, 0x22, 0x04, 'R', 'e', 'l', 'u', 0x2a, 0x03, 0x42, 0x01, 'w', 0x5a, 0x03, 0x0a, 0x01, 'x', 0x62, 0x03, 0x0a, 0x01, 'y'}},
		{"node", &NodeProto{Input: []string{"a"}, Output: []string{"b"}, Name: proto.String("n"), Domain: proto.String("")},
			[]byte{0x0a, 0x01, 'a', 0x12, 0x01, 'b', 0x1a, 0x01, 'n', 0x3a, 0x00}},
		{"attribute int", &AttributeProto{Name: proto.String("axis"), I: proto.Int64(1), Type: AttributeProto_INT.Enum()},
			[]byte{0x0a, 0x04, 'a', 'x', 'i', 's', 0x18, 0x01, 0xa0, 0x01, 0x02}},
		{"attribute ints (unpacked, proto2)", &AttributeProto{Ints: []int64{1, 2}, Type: AttributeProto_INTS.Enum()},
			[]byte{0x40, 0x01, 0x40, 0x02, 0xa0, 0x01, 0x07}},
		{"attribute float and tensor", &AttributeProto{F: proto.Float32(1), T: &TensorProto{DataType: proto.Int32(1)}},
			[]byte{0x15, 0x00, 0x00, 0x80, 0x3f, 0x2a, 0x02, 0x10, 0x01}},
		{"tensor", &TensorProto{Dims: []int64{2, 3}, DataType: proto.Int32(int32(TensorProto_FLOAT)), Name: proto.String("w"), RawData: []byte{1}},
			[]byte{0x08, 0x02, 0x08, 0x03, 0x10, 0x01, 0x42, 0x01, 'w', 0x4a, 0x01, 0x01}},
		{"value info", &ValueInfoProto{Name: proto.String("x"), Type: &TypeProto{Value: &TypeProto_TensorType{TensorType: &TypeProto_Tensor{
			ElemType: proto.Int32(int32(TensorProto_INT64)),
			Shape: &TensorShapeProto{Dim: []*TensorShapeProto_Dimension{
				{Value: &TensorShapeProto_Dimension_DimParam{DimParam: "B"}},
				{Value: &TensorShapeProto_Dimension_DimValue{DimValue: 5}},
			}},
		}}}}, []byte{0x0a, 0x01, 'x', 0x12, 0x0f, 0x0a, 0x0d, 0x08, 0x07, 0x12, 0x09, 0x0a, 0x03, 0x12, 0x01, 'B', 0x0a, 0x02, 0x08, 0x05}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := proto.MarshalOptions{Deterministic: true}.Marshal(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Marshal = % x, want % x", got, tt.want)
			}
		})
	}
}

// TestDataTypeNumbers pins the TensorProto.DataType values the exporter uses.
func TestDataTypeNumbers(t *testing.T) {
	for _, tt := range []struct {
		got  TensorProto_DataType
		want int32
	}{{TensorProto_FLOAT, 1}, {TensorProto_INT64, 7}, {TensorProto_BOOL, 9}, {TensorProto_INT32, 6}} {
		if int32(tt.got) != tt.want {
			t.Errorf("%v = %d, want %d", tt.got, tt.got, tt.want)
		}
	}
}
