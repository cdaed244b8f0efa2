// Command kronos-export writes the five ONNX graphs of a Kronos tokenizer +
// predictor pair, with Triton configs and kronos.json manifests, into a model
// repository. All the work is done by package export; this is its
// command-line front end.
//
// # Usage
//
//	kronos-export --tokenizer models/kronos-nano/tokenizer \
//	    --predictor models/kronos-nano/predictor \
//	    --name kronos-nano --max-context 256 --out model_repository
//	kronos-export --tokenizer NeoQuasar/Kronos-Tokenizer-base \
//	    --predictor NeoQuasar/Kronos-small --name kronos-small --max-context 512
//	kronos-export --random small --name kronos-small-random --out /tmp/repo
//
// --tokenizer and --predictor take a local folder (config.json +
// model.safetensors) or a hub repository id, downloaded into the cache
// (--hub-url, --revision, --cache-dir; HF_TOKEN is sent when set). --random
// PRESET exports random weights of a checkpoint.RandomPair preset instead.
//
// # Exit status
//
// 0 on success, 2 for bad flags, 1 for any other error (missing or invalid
// checkpoint, download failure, write failure).
package main
