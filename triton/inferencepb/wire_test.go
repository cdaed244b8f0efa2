package inferencepb

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The bytes below are written field by field with the field numbers of the
// KServe v2 / Triton protocol specification, independently of
// inference.proto, so a wrong number in our proto fails here.

type msg []byte

func (m msg) str(n protowire.Number, s string) msg {
	m = protowire.AppendTag(m, n, protowire.BytesType)
	return protowire.AppendString(m, s)
}

func (m msg) bytes(n protowire.Number, b []byte) msg {
	m = protowire.AppendTag(m, n, protowire.BytesType)
	return protowire.AppendBytes(m, b)
}

func (m msg) sub(n protowire.Number, s msg) msg { return m.bytes(n, s) }

func (m msg) varint(n protowire.Number, v uint64) msg {
	m = protowire.AppendTag(m, n, protowire.VarintType)
	return protowire.AppendVarint(m, v)
}

func (m msg) packed(n protowire.Number, vs ...int64) msg {
	var p []byte
	for _, v := range vs {
		p = protowire.AppendVarint(p, uint64(v))
	}
	return m.bytes(n, p)
}

func TestInferWireNumbers(t *testing.T) {
	req := msg(nil).str(1, "kronos-nano-window").str(2, "3").str(3, "req-1").
		sub(5, msg(nil).str(1, "s1").str(2, "INT64").packed(3, 2, 64)).
		sub(6, msg(nil).str(1, "s1_logits")).
		bytes(7, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	var r ModelInferRequest
	if err := proto.Unmarshal(req, &r); err != nil {
		t.Fatal(err)
	}
	if r.GetModelName() != "kronos-nano-window" || r.GetModelVersion() != "3" || r.GetId() != "req-1" ||
		r.GetInputs()[0].GetName() != "s1" || r.GetInputs()[0].GetDatatype() != "INT64" ||
		r.GetInputs()[0].GetShape()[1] != 64 || r.GetOutputs()[0].GetName() != "s1_logits" ||
		r.GetRawInputContents()[0][0] != 1 || len(r.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("ModelInferRequest decoded as %v", &r)
	}
	resp := msg(nil).str(1, "m").str(2, "3").
		sub(5, msg(nil).str(1, "s1_logits").str(2, "FP32").packed(3, 1, 256)).
		bytes(6, []byte{0, 0, 128, 63})
	var rr ModelInferResponse
	if err := proto.Unmarshal(resp, &rr); err != nil {
		t.Fatal(err)
	}
	if rr.GetModelVersion() != "3" || rr.GetOutputs()[0].GetShape()[1] != 256 || len(rr.GetRawOutputContents()[0]) != 4 {
		t.Fatalf("ModelInferResponse decoded as %v", &rr)
	}
	md := msg(nil).str(1, "m").str(2, "1").str(2, "2").str(3, "onnxruntime_onnx").
		sub(4, msg(nil).str(1, "x").str(2, "FP32").packed(3, -1, -1, 6)).
		sub(5, msg(nil).str(1, "quant_input").str(2, "FP32").packed(3, -1, -1, 20))
	var mr ModelMetadataResponse
	if err := proto.Unmarshal(md, &mr); err != nil {
		t.Fatal(err)
	}
	if len(mr.GetVersions()) != 2 || mr.GetInputs()[0].GetShape()[2] != 6 || mr.GetOutputs()[0].GetShape()[2] != 20 {
		t.Fatalf("ModelMetadataResponse decoded as %v", &mr)
	}
}

func TestRepositoryWireNumbers(t *testing.T) {
	idx := msg(nil).sub(1, msg(nil).str(1, "m").str(2, "2").str(3, "READY").str(4, "ok"))
	var ir RepositoryIndexResponse
	if err := proto.Unmarshal(idx, &ir); err != nil {
		t.Fatal(err)
	}
	if m := ir.GetModels()[0]; m.GetVersion() != "2" || m.GetState() != "READY" || m.GetReason() != "ok" {
		t.Fatalf("RepositoryIndexResponse decoded as %v", &ir)
	}
	load := msg(nil).str(1, "repo").str(2, "m").
		sub(3, msg(nil).str(1, "config").sub(2, msg(nil).str(3, "{}"))).
		sub(3, msg(nil).str(1, "file:2/model.onnx").sub(2, msg(nil).bytes(4, []byte{7})))
	var lr RepositoryModelLoadRequest
	if err := proto.Unmarshal(load, &lr); err != nil {
		t.Fatal(err)
	}
	if lr.GetModelName() != "m" || lr.GetParameters()["config"].GetStringParam() != "{}" ||
		lr.GetParameters()["file:2/model.onnx"].GetBytesParam()[0] != 7 {
		t.Fatalf("RepositoryModelLoadRequest decoded as %v", &lr)
	}
	ready := msg(nil).str(1, "m").str(2, "4")
	var rq ModelReadyRequest
	if err := proto.Unmarshal(ready, &rq); err != nil || rq.GetVersion() != "4" {
		t.Fatalf("ModelReadyRequest decoded as %v (%v)", &rq, err)
	}
}

func TestModelConfigWireNumbers(t *testing.T) {
	cfg := msg(nil).str(1, "m").str(17, "onnxruntime").varint(4, 32).
		sub(3, msg(nil).sub(1, msg(nil).varint(1, 2))).
		sub(5, msg(nil).str(1, "last").varint(2, 9).packed(4, 1).sub(5, nil)).
		sub(6, msg(nil).str(1, "s1_logits").varint(2, 11).packed(3, 256)).
		sub(7, msg(nil).varint(2, 1).varint(4, 1)).
		sub(11, msg(nil).packed(1, 16, 32).varint(2, 200).sub(6, msg(nil).varint(1, 0).varint(2, 2000000).varint(3, 1).varint(4, 256))).
		sub(12, msg(nil).sub(4, msg(nil).sub(1, msg(nil).str(1, "tensorrt").sub(2, msg(nil).str(1, "precision_mode").str(2, "FP16"))))).
		sub(14, msg(nil).str(1, "kronos.max_context").sub(2, msg(nil).str(1, "512"))).
		sub(16, msg(nil).str(1, "b1_t64").varint(2, 1).sub(3, msg(nil).str(1, "s1").sub(2, msg(nil).varint(1, 9).packed(2, 64).varint(3, 1)))).
		sub(24, msg(nil).varint(1, 1))
	var c ModelConfig
	if err := proto.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	db := c.GetDynamicBatching()
	acc := c.GetOptimization().GetExecutionAccelerators().GetGpuExecutionAccelerator()
	w := c.GetModelWarmup()
	if c.GetBackend() != "onnxruntime" || c.GetMaxBatchSize() != 32 || c.GetVersionPolicy().GetLatest().GetNumVersions() != 2 ||
		c.GetInput()[0].GetDataType() != DataType_TYPE_INT64 || c.GetInput()[0].GetReshape() == nil ||
		c.GetOutput()[0].GetDataType() != DataType_TYPE_FP32 || c.GetOutput()[0].GetDims()[0] != 256 ||
		c.GetInstanceGroup()[0].GetKind() != ModelInstanceGroup_KIND_GPU || c.GetInstanceGroup()[0].GetCount() != 1 ||
		db.GetPreferredBatchSize()[1] != 32 || db.GetMaxQueueDelayMicroseconds() != 200 ||
		db.GetDefaultQueuePolicy().GetDefaultTimeoutMicroseconds() != 2000000 || !db.GetDefaultQueuePolicy().GetAllowTimeoutOverride() ||
		db.GetDefaultQueuePolicy().GetMaxQueueSize() != 256 ||
		acc[0].GetParameters()["precision_mode"] != "FP16" ||
		c.GetParameters()["kronos.max_context"].GetStringValue() != "512" ||
		w[0].GetInputs()["s1"].GetDims()[0] != 64 || !w[0].GetInputs()["s1"].GetZeroData() ||
		!c.GetResponseCache().GetEnable() || len(c.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("ModelConfig decoded as %v", &c)
	}
}
