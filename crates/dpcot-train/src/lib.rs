//! # dpcot-train
//!
//! Training and evaluation of dpcot models on the DP chain-of-thought tasks.
//!
//! Not yet built (see the model/training issue). Intended modules:
//! - `batch`: batches from dpcot-tasks datasets, padded per batch, loss mask after the first separator;
//! - `train`: AdamW with warm-up and linear decay, masked cross-entropy, early stop at a target accuracy;
//! - `checkpoint`: atomic checkpoints (model, optimizer, step, RNG) and bit-exact resume;
//! - `eval`: greedy CoT decoding with the incremental attention forms, the task checker's metrics;
//! - `metrics`: `metrics.jsonl` and `summary.json` of a run directory.
