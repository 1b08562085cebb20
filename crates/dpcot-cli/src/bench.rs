//! `dpcot bench`: a training step, a forward pass and cached decoding of one model shape.

use anyhow::Result;
use clap::Args;
use dpcot_model::config::flag_help;
use dpcot_model::ModelOverrides;
use dpcot_train::bench::BenchSpec;

use crate::args::{BackendArgs, ModelArgs};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[command(flatten)]
    model_settings: ModelOverrides,
    /// Vocabulary of the random tokens.
    #[arg(long, help = flag_help("Vocabulary of the random tokens", BenchSpec::DEFAULT_VOCAB_SIZE))]
    vocab: Option<usize>,
    /// Untimed repetitions of each measurement.
    #[arg(long, help = flag_help("Untimed repetitions of each measurement", BenchSpec::DEFAULT_WARMUP))]
    warmup: Option<usize>,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, help = flag_help("Timed repetitions of each measurement (the median is reported)", BenchSpec::DEFAULT_ITERATIONS))]
    iterations: Option<usize>,
    /// Seed of the random tokens and the initialisation.
    #[arg(long, help = flag_help("Seed of the random tokens and the initialisation", BenchSpec::DEFAULT_SEED))]
    seed: Option<u64>,
    /// Time the operations a training step is made of instead, one by one.
    #[arg(long)]
    ops: bool,
    /// Time only the training step (for instruction counts under callgrind).
    #[arg(long, conflicts_with = "ops")]
    train_only: bool,
    /// Run the composed form of dpcot's fused operations (attention, softmax, LayerNorm, GELU,
    /// cross-entropy, dropout, linear attention's feature map) instead of its fused kernels, to
    /// measure what the kernels gain.
    #[arg(long)]
    composed: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

impl BenchArgs {
    fn spec(&self) -> Result<BenchSpec> {
        let mut spec = BenchSpec::new(
            self.model.attention(&self.model_settings)?,
            self.d_model,
            self.seq_len,
            self.batch,
        );
        spec.model = self.model_settings.apply(spec.model);
        spec.model.vocab_size = self.vocab.unwrap_or(spec.model.vocab_size);
        spec.warmup = self.warmup.unwrap_or(spec.warmup);
        spec.iterations = self.iterations.unwrap_or(spec.iterations);
        spec.seed = self.seed.unwrap_or(spec.seed);
        Ok(spec)
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let backend = args.backend.backend()?;
    let spec = args.spec()?;
    let device = backend.device()?;
    dpcot_model::dpcot_attention::fused::set_enabled(!args.composed);
    if args.ops {
        let ops = dpcot_train::bench::measure_ops(&spec, &device)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "backend": backend, "spec": spec, "ops": ops })
            );
        } else {
            for op in ops {
                println!("{:<24} {:>9.3} ms", op.op, 1e3 * op.seconds);
            }
        }
        return Ok(());
    }
    if args.train_only {
        let seconds = dpcot_train::bench::measure_train_step(&spec, &device)?;
        if args.json {
            let line = serde_json::json!({ "backend": backend, "spec": spec, "train_step_seconds": seconds });
            println!("{line}");
        } else {
            println!("{backend} train step {seconds:.4} s");
        }
        return Ok(());
    }
    let timings = dpcot_train::bench::measure(&spec, &device)?;
    if args.json {
        let line = serde_json::json!({ "backend": backend, "spec": spec, "timings": timings });
        println!("{line}");
    } else {
        println!(
            "{backend} {} d_model={} seq_len={} batch={}: train step {:.3} s, forward {:.3} s, decode {:.0} tokens/s",
            args.model.choice()?,
            spec.model.d_model,
            spec.seq_len(),
            spec.batch,
            timings.train_step_seconds,
            timings.forward_seconds,
            timings.decode_tokens_per_second,
        );
    }
    Ok(())
}
