// Package checkpoint reads Kronos checkpoints laid out as the public Hugging
// Face repositories (NeoQuasar/Kronos-*, NeoQuasar/Kronos-Tokenizer-*): a
// folder with config.json (the constructor keyword arguments) and
// model.safetensors (the PyTorch state_dict under its exact key names).
//
// It parses the safetensors container (8-byte little-endian header length,
// JSON header, raw little-endian data), converts every tensor to float32
// (I64 buffers such as tokenizer.bsq.basis are accepted and kept as int64),
// and can fetch a checkpoint by repository id from a hub over HTTPS.
package checkpoint
