//! Speed of one model shape: a training step (forward, masked loss, backward, AdamW), a forward
//! pass without autodiff, and greedy decoding through the attention caches.
//!
//! The measured step is the one [`train`](crate::train) runs, on random tokens: same loss, same
//! optimizer settings, and no read of the loss (the loop reads it at logging steps only); the
//! decoding is the evaluator's [`greedy_decode`]. `cargo xtask bench` runs this for a grid of
//! shapes next to an identical PyTorch model (`bench/torch_bench.py`) and prints the ratios;
//! docs/performance.md has the results.

use std::time::Instant;

use burn::nn::{DropoutConfig, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use dpcot_model::dpcot_attention::{fused, linear_rows, AttentionKind};
use dpcot_model::generate::greedy_decode;
use dpcot_model::{gelu_tanh, ModelConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::optim::{masked_cross_entropy, optimizer};
use crate::{TrainConfig, TrainError};

/// One shape to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSpec {
    /// The model measured; its `max_len` is the sequence length of the batch.
    pub model: ModelConfig,
    /// Sequences per batch.
    pub batch: usize,
    /// Untimed repetitions before measuring (allocator and cache warm-up).
    pub warmup: usize,
    /// Timed repetitions; the median is reported.
    pub iterations: usize,
    /// Seeds the random tokens and the initialisation.
    pub seed: u64,
}

impl BenchSpec {
    /// The vocabulary of the random tokens when not given.
    pub const DEFAULT_VOCAB_SIZE: usize = 64;
    /// Untimed repetitions when not given.
    pub const DEFAULT_WARMUP: usize = 1;
    /// Timed repetitions when not given.
    pub const DEFAULT_ITERATIONS: usize = 3;
    /// The seed when none is given.
    pub const DEFAULT_SEED: u64 = 0;

    /// The experiments' model (the reference's depth, heads and dropout) at this shape, on a
    /// [`Self::DEFAULT_VOCAB_SIZE`]-token vocabulary.
    pub fn new(attention: AttentionKind, d_model: usize, seq_len: usize, batch: usize) -> Self {
        Self {
            model: ModelConfig::new(Self::DEFAULT_VOCAB_SIZE, seq_len, d_model, attention),
            batch,
            warmup: Self::DEFAULT_WARMUP,
            iterations: Self::DEFAULT_ITERATIONS,
            seed: Self::DEFAULT_SEED,
        }
    }

    /// Tokens per sequence.
    pub fn seq_len(&self) -> usize {
        self.model.max_len
    }

    /// Checks the model and that there is something to time.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.model.validate()?;
        if self.batch == 0 {
            // An empty batch would reach burn's kernels as zero-sized tensors.
            return Err(TrainError::invalid(
                "bench batch",
                "must be at least 1, got 0",
            ));
        }
        if self.iterations == 0 {
            return Err(TrainError::invalid(
                "bench iterations",
                "must be at least 1, got 0",
            ));
        }
        Ok(())
    }
}

/// Median seconds of each measured operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchTimings {
    /// One training step on a `[batch, seq_len]` batch.
    pub train_step_seconds: f64,
    /// One forward pass (no autodiff, dropout off) on the same batch.
    pub forward_seconds: f64,
    /// Greedy decoding of `seq_len` tokens for `batch` sequences through the caches, starting
    /// from one prompt token and reading every step's tokens back: tokens produced per second
    /// over the whole batch.
    pub decode_tokens_per_second: f64,
}

/// Runs the three measurements of `spec` on `device` (a device without autodiff; training
/// wraps it).
pub fn measure(spec: &BenchSpec, device: &Device) -> Result<BenchTimings, TrainError> {
    let train_step_seconds = measure_train_step(spec, device)?;
    let (inputs, _) = random_batch(spec, device);
    device.seed(spec.seed);
    let model = spec.model.init(device)?;
    let forward_seconds = median_seconds(spec, device, || {
        let _ = model.forward(inputs.clone());
    })?;

    // The evaluator's decoder, reading every step's tokens back; an end token outside the
    // vocabulary is never produced, so every sequence runs to `seq_len` generated tokens.
    let prompts: Vec<Vec<u32>> = inputs
        .clone()
        .slice_dim(1, 0..1)
        .into_data()
        .iter::<i64>()
        .map(|t| vec![t as u32])
        .collect();
    let never = spec.model.vocab_size as u32;
    let mut decode_seconds = Vec::new();
    for i in 0..spec.warmup + spec.iterations {
        let started = Instant::now();
        greedy_decode(&model, &prompts, never, spec.seq_len() + 1, device)?;
        if i >= spec.warmup {
            decode_seconds.push(started.elapsed().as_secs_f64());
        }
    }
    let decode_tokens_per_second = (spec.batch * spec.seq_len()) as f64 / median(decode_seconds);

    Ok(BenchTimings {
        train_step_seconds,
        forward_seconds,
        decode_tokens_per_second,
    })
}

/// Median seconds of one training step of `spec` on `device` (wrapped in autodiff): the
/// `train step` of [`measure`], alone (`dpcot bench --train-only`, for instruction counts).
pub fn measure_train_step(spec: &BenchSpec, device: &Device) -> Result<f64, TrainError> {
    spec.validate()?;
    let (inputs, targets) = random_batch(spec, device);
    let mask = Tensor::<2>::ones([spec.batch, spec.seq_len()], device);
    let trained = device.clone().autodiff();
    trained.seed(spec.seed);
    let mut model = spec.model.init(&trained)?;
    let defaults = TrainConfig::new(1);
    let mut optimizer = optimizer(&defaults)?;
    let (inputs, targets, mask) = (
        inputs.to_device(&trained),
        targets.to_device(&trained),
        mask.to_device(&trained),
    );
    median_seconds(spec, device, || {
        let logits = model.forward(inputs.clone());
        let loss = masked_cross_entropy(logits, targets.clone(), mask.clone());
        // Like most of the training loop's steps, this one does not read the loss back.
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(defaults.learning_rate, model.clone(), grads);
    })
}

/// Time of one tensor operation of the training step, at the benchmark's shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpTiming {
    /// What was timed; `bench/torch_bench.py --ops` uses the same names.
    pub op: String,
    /// Median seconds.
    pub seconds: f64,
}

/// Times the operations a training step is made of, one by one, at `spec`'s shapes
/// (`[batch, seq, d_model]` activations, `4·d_model` MLP width, `[batch, heads, seq, seq]`
/// scores): the table that says where a gap to another framework lies. "fwd+bwd" is the
/// operation, the sum of its output, and the backward pass to the input and the weights. The
/// linear layer, softmax, LayerNorm, GELU, the cross-entropy and dropout are the model's own
/// ([`linear_rows`] and [`fused`]: the fused kernels on burn-flex unless
/// [turned off](fused::set_enabled)).
pub fn measure_ops(spec: &BenchSpec, device: &Device) -> Result<Vec<OpTiming>, TrainError> {
    spec.validate()?;
    let (b, l, d, h) = (
        spec.batch,
        spec.seq_len(),
        spec.model.d_model,
        spec.model.n_heads,
    );
    let trained = device.clone().autodiff();
    // One generator behind both devices: this seeds the inputs and the layers' weights.
    device.seed(spec.seed);
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<3>::random([b, l, d], normal, device);
    let wide = Tensor::<3>::random([b, l, 4 * d], normal, device);
    let q = Tensor::<4>::random([b, h, l, d / h], normal, device);
    let scores = Tensor::<4>::random([b, h, l, l], normal, device);
    let linear = LinearConfig::new(d, 4 * d).init(device);
    let linear_ad = LinearConfig::new(d, 4 * d).init(&trained);
    let gamma = Tensor::<1>::ones([d], &trained).require_grad();
    let beta = Tensor::<1>::zeros([d], &trained).require_grad();
    let vocab = spec.model.vocab_size;
    let logits = Tensor::<2>::random([b * l, vocab], normal, device);
    let targets =
        Tensor::<1, Int>::random([b * l], Distribution::Uniform(0.0, vocab as f64), device);
    let weights = Tensor::<1>::ones([b * l], device);
    let dropout = DropoutConfig::new(0.1).init();
    let tracked = |t: &Tensor<3>| t.clone().autodiff().require_grad();
    let tracked4 = |t: &Tensor<4>| t.clone().autodiff().require_grad();

    let mut timings = Vec::new();
    let mut time = |op: &str, run: &mut dyn FnMut()| -> Result<(), TrainError> {
        let seconds = median_seconds(spec, device, run)?;
        timings.push(OpTiming {
            op: op.to_string(),
            seconds,
        });
        Ok(())
    };
    time("linear d→4d", &mut || {
        let _ = linear_rows(&linear, x.clone());
    })?;
    time("linear d→4d fwd+bwd", &mut || {
        let _ = linear_rows(&linear_ad, tracked(&x)).sum().backward();
    })?;
    time("matmul QKᵀ", &mut || {
        let _ = q.clone().matmul(q.clone().swap_dims(2, 3));
    })?;
    time("softmax", &mut || {
        let _ = fused::softmax(scores.clone(), 1.0, false);
    })?;
    time("softmax fwd+bwd", &mut || {
        let _ = fused::softmax(tracked4(&scores), 1.0, false)
            .sum()
            .backward();
    })?;
    time("layer_norm fwd+bwd", &mut || {
        let normalized = fused::layer_norm(tracked(&x), gamma.clone(), Some(beta.clone()), 1e-5);
        let _ = normalized.sum().backward();
    })?;
    time("cross_entropy fwd+bwd", &mut || {
        let z = logits.clone().autodiff().require_grad();
        let (t, w) = (targets.clone().autodiff(), weights.clone().autodiff());
        let _ = fused::cross_entropy_sum(z, t, w).backward();
    })?;
    time("gelu_tanh fwd+bwd", &mut || {
        let _ = gelu_tanh(tracked(&wide)).sum().backward();
    })?;
    time("dropout", &mut || {
        let _ = fused::dropout(wide.clone().autodiff(), &dropout);
    })?;
    time("add", &mut || {
        let _ = wide.clone().add(wide.clone());
    })?;
    time("exp", &mut || {
        let _ = wide.clone().exp();
    })?;
    Ok(timings)
}

/// Random tokens and their next-token targets, from `spec.seed`.
fn random_batch(spec: &BenchSpec, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let (b, l) = (spec.batch, spec.seq_len());
    let tokens: Vec<i64> = (0..b * (l + 1))
        .map(|_| rng.random_range(0..spec.model.vocab_size as i64))
        .collect();
    let all: Tensor<2, Int> = Tensor::from_data(TensorData::new(tokens, [b, l + 1]), device);
    (all.clone().slice_dim(1, 0..l), all.slice_dim(1, 1..l + 1))
}

/// Median wall time of `run` over `spec.iterations` runs after `spec.warmup` untimed ones,
/// with the device synchronised before the clock stops (GPU backends queue work).
fn median_seconds(
    spec: &BenchSpec,
    device: &Device,
    mut run: impl FnMut(),
) -> Result<f64, TrainError> {
    let mut seconds = Vec::with_capacity(spec.iterations);
    for i in 0..spec.warmup + spec.iterations {
        let started = Instant::now();
        run();
        device.sync().map_err(|e| TrainError::Backend {
            name: format!("{device:?}"),
            reason: format!("synchronising after a benchmark iteration: {e:?}"),
        })?;
        if i >= spec.warmup {
            seconds.push(started.elapsed().as_secs_f64());
        }
    }
    Ok(median(seconds))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_tiny_shape_measures_positive_finite_times() {
        let mut spec = BenchSpec::new(AttentionKind::Softmax, 16, 8, 2);
        spec.warmup = 0;
        spec.iterations = 1;
        let timings = measure(&spec, &Device::default()).unwrap();
        for value in [
            timings.train_step_seconds,
            timings.forward_seconds,
            timings.decode_tokens_per_second,
        ] {
            assert!(value.is_finite() && value > 0.0, "{timings:?}");
        }
    }

    #[test]
    fn zero_iterations_is_an_error() {
        let mut spec = BenchSpec::new(AttentionKind::Softmax, 16, 8, 2);
        spec.iterations = 0;
        let err = measure(&spec, &Device::default()).unwrap_err();
        assert!(err.to_string().contains("iterations"), "{err}");
        let err = measure_ops(&spec, &Device::default()).unwrap_err();
        assert!(err.to_string().contains("iterations"), "{err}");
    }

    #[test]
    fn an_empty_batch_is_an_error() {
        let spec = BenchSpec::new(AttentionKind::Softmax, 16, 8, 0);
        for err in [
            measure(&spec, &Device::default()).unwrap_err(),
            measure_ops(&spec, &Device::default()).unwrap_err(),
        ] {
            assert!(err.to_string().contains("batch"), "{err}");
        }
    }
}
