// Package graphs is the contract between the exporter (export/, which writes
// the ONNX graphs) and the backends that run them (internal/onnxlocal and
// triton/): graph roles, tensor names, shapes and the per-version manifest.
//
// # Model repository layout
//
// One Kronos model NAME (a tokenizer + predictor pair) becomes five Triton
// models, one per graph role:
//
//	model_repository/NAME-encoder/config.pbtxt
//	model_repository/NAME-encoder/configs/gpu.pbtxt      (GPU variant)
//	model_repository/NAME-encoder/<version>/model.onnx
//	model_repository/NAME-encoder/<version>/kronos.json (Manifest)
//	... the same for -decoder, -prefill, -step, -s2
//
// All graphs use ONNX opset 17, IR version 8, and only standard operators. The
// batch dimension B is dynamic everywhere; so are sequence lengths and the
// KV-cache capacity C.
//
// # Graphs (d = predictor d_model, H = n_heads, hd = d/H, D = s1_bits+s2_bits,
// V1 = 2^s1_bits, V2 = 2^s2_bits, NL = n_layers, G = 4 dependency heads,
// gd = d/4)
//
// encoder: x f32 [B,L,6] (normalised candles) -> quant_input f32 [B,L,D]
// (quant_embed output, L2-normalised per position; bits are its signs).
//
// decoder: s1, s2 i64 [B,W] -> x f32 [B,W,6] (normalised candles). Causal;
// positions count from 0 at the start of each row.
//
// prefill: s1, s2 i64 [B,T], stamp i64 [B,T,5], last i64 [B] (index of each
// row's last valid position; rows are right-padded, padding is never attended
// by valid positions because attention is causal) ->
// s1_logits f32 [B,V1] and hidden f32 [B,d] at position last;
// key_<l>, value_<l> f32 [B,H,T,hd] for l = 0..NL-1 (RoPE applied to keys);
// dep_key, dep_value f32 [B,G,T,gd] (the dependency layer's key/value
// projections of the final hidden states, no rotation).
//
// step (one new token per row, KV cache): s1, s2 i64 [B], stamp i64 [B,5],
// pos i64 [B] (position of the new token = number of valid cache entries),
// past_key_<l> f32 [B,H,hd,C] (keys stored transposed), past_value_<l> f32
// [B,H,C,hd] -> s1_logits f32 [B,V1], hidden f32 [B,d], key_<l>, value_<l> f32
// [B,H,hd] (the new position's key and value), dep_key, dep_value f32 [B,G,gd].
// Cache entries j >= pos are masked out; their content is ignored.
//
// s2 (dependency-aware layer + s2 head): s1 i64 [B], hidden f32 [B,d] (at the
// last position), dep_key f32 [B,G,gd,C] (transposed), dep_value f32
// [B,G,C,gd], length i64 [B] (valid entries) -> s2_logits f32 [B,V2].
package graphs
