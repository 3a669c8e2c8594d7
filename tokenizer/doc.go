// Package tokenizer implements Qwen2's byte-level BPE tokenizer so that it
// gives exactly the ids and decoded text of Hugging Face's Qwen2 tokenizer
// (the Rust `tokenizers` backend used by transformers).
//
// A Tokenizer is loaded from a model folder with Load: from tokenizer.json when
// present, otherwise from vocab.json + merges.txt + tokenizer_config.json. The
// encoding pipeline is the one Hugging Face runs for Qwen2:
//
//  1. added and special tokens (such as <|im_start|> or <|image_pad|>) are
//     matched first, leftmost-longest, and never split;
//  2. the text between them is normalized to NFC;
//  3. it is split into pre-tokens with Qwen2's pattern (Pattern), implemented
//     here as a hand-written scanner with the same semantics as the regular
//     expression in Hugging Face's engine (Oniguruma);
//  4. each pre-token's UTF-8 bytes are merged with the BPE merge ranks
//     (lowest rank first, leftmost on ties), with a bounded, concurrency-safe
//     cache of the merge result per pre-token.
//
// Decode maps ids back to bytes and turns invalid UTF-8 into U+FFFD the way
// Python's bytes.decode(errors="replace") and Rust's String::from_utf8_lossy
// do (one U+FFFD per maximal invalid subpart).
//
// A Tokenizer is safe for concurrent use.
package tokenizer
