// Package checkpoint reads, writes, downloads and fabricates Kronos
// checkpoints laid out as the public Hugging Face repositories
// (NeoQuasar/Kronos-*, NeoQuasar/Kronos-Tokenizer-*): a folder with
// config.json (the constructor keyword arguments) and model.safetensors (the
// PyTorch state_dict under its exact key names).
//
// # Reading
//
// Load reads a folder into a Checkpoint: the raw config.json, every tensor
// and the SHA-256 of model.safetensors, which names the weights in
// Checkpoint.Version ("<name>@sha256:<12 hex digits>"). TokenizerConfig and
// PredictorConfig decode and validate config.json.
//
// ParseSafetensors parses the container: an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {...}}, then the raw little-endian data. Float tensors (F32, F16, BF16,
// F64) are converted to float32; I64 buffers such as tokenizer.bsq.basis are
// kept as int64. The parser checks every offset, shape and dtype against the
// buffer and requires the tensors to tile the data section exactly; it never
// panics on bad input (FuzzParseSafetensors).
//
// # Writing
//
// WriteSafetensors writes the same layout, byte for byte as PyTorch's
// safetensors does (compact JSON in name order, "__metadata__" last, header
// padded with spaces to a multiple of 8, data in name order), so reading a
// reference file and writing it back gives identical bytes. Checkpoint.Save
// writes config.json and model.safetensors into a folder atomically.
//
// # Random weights
//
// RandomTokenizer, RandomPredictor and RandomPair make checkpoints with random
// weights for any valid config, with exactly the keys, shapes and dtypes of
// the real state_dicts, including the rotary inv_freq buffers, the I64 BSQ
// basis buffers and the unused post_quant_embed_pre. The init follows Kronos
// (Xavier-normal Linear weights, N(0, d_model^-1/2) embeddings) with non-zero
// biases and norm gains near 1 (RandomBiasStd, RandomGainLow/High), drawn
// from math/rand/v2 PCG streams keyed by seed and tensor name, so the same
// seed always gives the same weights. Presets ("small", "nano", "tiny") name
// common sizes. A random checkpoint behaves like a loaded one: its Config is
// the config.json Save writes, and its SHA256 is that of its serialisation.
//
// # Hub download and cache layout
//
// Fetch downloads a checkpoint by repository id from a Hugging Face-style hub:
//
//	<HubURL>/<owner>/<name>/resolve/<revision>/config.json
//	<HubURL>/<owner>/<name>/resolve/<revision>/model.safetensors
//
// into the cache folder
//
//	<CacheDir>/<owner>/<name>/<revision>/{config.json,model.safetensors}
//
// where CacheDir defaults to <os.UserCacheDir()>/kronos-gateway/hub (for
// example ~/.cache/kronos-gateway/hub on Linux) and the revision to "main"; a
// revision with slashes ("refs/pr/1") becomes nested folders. Fetch returns
// that folder, ready for Load. Files already in the cache are used as they
// are; delete the folder to refresh a moving revision. Each download goes to
// a temporary file next to its destination and is renamed into place only
// after it is complete, within its size limit (1 MiB for config.json, 4 GiB by
// default for the weights) and valid (config.json is a JSON object; the
// safetensors header describes exactly the bytes received), so the cache
// never holds a partial file. Repository ids and revisions are validated
// before any request, so a crafted id cannot escape the cache folder. With a
// token (the command passes HF_TOKEN) the request carries
// "Authorization: Bearer <token>"; redirects are followed, and the header is
// not forwarded to another host.
//
// # Errors
//
// Errors wrap the internal/infer kinds: ErrInvalid for malformed files,
// configs and ids, ErrNotFound for missing files, unknown presets and hub 404s,
// ErrUnauthorized for hub 401/403 (with a hint about HF_TOKEN), ErrTooLarge for
// size limits and ErrUnavailable for network failures.
package checkpoint
