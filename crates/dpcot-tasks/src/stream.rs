//! The training distribution of a task, drawn fresh at every step, and the held-out examples
//! it must never yield.
//!
//! A run that trains on a stream sees new problems at every step, as the reference's million
//! examples nearly do, instead of a small fixed set seen many times over. The batch of step `s`
//! is a function of (seed, s) alone, so a resumed run draws exactly the batches it would have
//! drawn. Examples whose tokens equal a validation or test example's are rejected by their
//! fingerprint, so nothing the run is judged on is ever trained on.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use rand::distr::{weighted::WeightedIndex, Distribution};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::task::{DpTask, Example, Task};
use crate::TaskError;

/// How a task's training examples are drawn: the task's own distribution, or for arithmetic
/// optionally the reference's mixture of smaller operator counts.
#[derive(Debug, Clone)]
pub struct Sampler {
    task: Task,
    /// Arithmetic with `mix_smaller`: the operator count i is drawn from 1..=N with weight i.
    sizes: Option<WeightedIndex<usize>>,
}

impl Sampler {
    /// The training distribution of `task`. With `mix_smaller` (arithmetic only), an example
    /// has i operators with probability proportional to i, for i in 1..=N, as the reference's
    /// data generation does with its `--under` option; an error for other tasks.
    pub fn new(task: Task, mix_smaller: bool) -> Result<Self, TaskError> {
        let sizes = match (&task, mix_smaller) {
            (_, false) => None,
            (Task::Arithmetic(a), true) => {
                let weights: Vec<usize> = (1..=a.operators()).collect();
                Some(WeightedIndex::new(weights).expect("weights 1..=N are positive"))
            }
            (_, true) => {
                return Err(TaskError::invalid(
                    "mix_smaller",
                    true,
                    format!("only arithmetic mixes smaller sizes, not {}", task.name()),
                ))
            }
        };
        Ok(Self { task, sizes })
    }

    /// One training example.
    pub fn sample(&self, rng: &mut dyn RngCore) -> Example {
        match (&self.task, &self.sizes) {
            (Task::Arithmetic(a), Some(sizes)) => a.generate_with(sizes.sample(rng) + 1, rng),
            _ => self.task.generate(rng),
        }
    }
}

/// A 64-bit fingerprint of an example's tokens. Deterministic (SipHash with fixed keys); two
/// different examples share one with probability about 2⁻⁶⁴, which would only drop a training
/// example.
pub fn fingerprint(tokens: &[u32]) -> u64 {
    let mut hasher = DefaultHasher::new();
    tokens.hash(&mut hasher);
    hasher.finish()
}

/// The largest share of a task's draws that its held-out examples may take
/// ([`HeldOut::check_room_to_train`]).
pub const MAX_HELD_OUT_SHARE: f64 = 0.5;

/// Draws that estimate the held-out share: enough to tell 50 % from 40 % (standard error
/// about 1.6 points), a few milliseconds of generation.
pub const HELD_OUT_PROBE: usize = 1000;

/// The examples a run is judged on (validation and test), by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct HeldOut {
    fingerprints: HashSet<u64>,
}

impl HeldOut {
    /// Holds out `examples`.
    pub fn new<'a>(examples: impl IntoIterator<Item = &'a Example>) -> Self {
        let mut held_out = Self::default();
        held_out.extend(examples);
        held_out
    }

    /// Holds out `examples` too.
    pub fn extend<'a>(&mut self, examples: impl IntoIterator<Item = &'a Example>) {
        self.fingerprints
            .extend(examples.into_iter().map(|e| fingerprint(&e.tokens)));
    }

    /// Whether `example` is held out.
    pub fn contains(&self, example: &Example) -> bool {
        self.fingerprints.contains(&fingerprint(&example.tokens))
    }

    /// The share of `draws` draws of `sampler` (from a generator seeded with `seed`) that are
    /// held out: an estimate of how much of the task's distribution training may not see.
    pub fn share_of_draws(&self, sampler: &Sampler, draws: usize, seed: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let held = (0..draws)
            .filter(|_| self.contains(&sampler.sample(&mut rng)))
            .count();
        held as f64 / draws.max(1) as f64
    }

    /// An error if the held-out examples are more than [`MAX_HELD_OUT_SHARE`] of what
    /// `sampler` draws (estimated from [`HELD_OUT_PROBE`] draws): the problem space is then so
    /// small that training sees only the few problems left, and accuracy on the held-out ones
    /// says nothing about what the model learned. (LIS with n = 2 from 21 numbers has 441
    /// problems; validation and test splits of 200 each leave about 40 to train on.)
    pub fn check_room_to_train(&self, sampler: &Sampler) -> Result<(), TaskError> {
        let share = self.share_of_draws(sampler, HELD_OUT_PROBE, 0);
        if share > MAX_HELD_OUT_SHARE {
            return Err(TaskError::HeldOutDominates {
                task: sampler.task.name(),
                held_out: self.len(),
                share,
            });
        }
        Ok(())
    }

    /// How many distinct examples are held out.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether nothing is held out.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

/// Draws `count` examples of `sampler` from `rng` that are not in `held_out` (repeats among
/// them allowed). An error naming `split` if the problem space runs out first.
pub fn draw(
    sampler: &Sampler,
    rng: &mut dyn RngCore,
    count: usize,
    held_out: &HeldOut,
    split: &'static str,
) -> Result<Vec<Example>, TaskError> {
    draw_kept(sampler, rng, count, split, |example| {
        !held_out.contains(example)
    })
}

/// Draws `count` distinct examples of `sampler` from `rng` that are not in `held_out`, and
/// holds each one out as it is drawn. An error naming `split` if the problem space runs out
/// first.
pub fn draw_distinct(
    sampler: &Sampler,
    rng: &mut dyn RngCore,
    count: usize,
    held_out: &mut HeldOut,
    split: &'static str,
) -> Result<Vec<Example>, TaskError> {
    draw_kept(sampler, rng, count, split, |example| {
        let fresh = !held_out.contains(example);
        if fresh {
            held_out.extend([example]);
        }
        fresh
    })
}

/// Draws until `count` examples were kept by `keep`, giving up after a number of attempts
/// proportional to `count` (small problem spaces can be exhausted by held-out examples).
fn draw_kept(
    sampler: &Sampler,
    rng: &mut dyn RngCore,
    count: usize,
    split: &'static str,
    mut keep: impl FnMut(&Example) -> bool,
) -> Result<Vec<Example>, TaskError> {
    let mut examples = reserve_examples(count, sampler.task.max_len(), split)?;
    let max_attempts = count.saturating_mul(20).saturating_add(10_000);
    let mut attempts = 0;
    while examples.len() < count {
        if attempts == max_attempts {
            return Err(TaskError::SpaceExhausted {
                split,
                wanted: count,
                found: examples.len(),
                attempts,
            });
        }
        attempts += 1;
        let example = sampler.sample(rng);
        if keep(&example) {
            examples.push(example);
        }
    }
    Ok(examples)
}

/// Room for `count` examples of up to `max_len` tokens, or an error if they would not fit in
/// this machine's memory (an allocation that fails aborts the process instead).
fn reserve_examples(
    count: usize,
    max_len: usize,
    split: &'static str,
) -> Result<Vec<Example>, TaskError> {
    let per_example = std::mem::size_of::<Example>() + max_len * std::mem::size_of::<u32>();
    let needed = (count as u128) * (per_example as u128);
    let too_many = |reason: String| TaskError::TooManyExamples {
        split,
        count,
        reason,
    };
    if let Some(memory) = physical_memory() {
        if needed > u128::from(memory) {
            return Err(too_many(format!(
                "up to {:.1} GB for examples of up to {max_len} tokens, on a machine with {:.1} GB",
                needed as f64 / 1e9,
                memory as f64 / 1e9
            )));
        }
    }
    let mut examples = Vec::new();
    examples
        .try_reserve_exact(count)
        .map_err(|e| too_many(e.to_string()))?;
    Ok(examples)
}

/// Total physical memory in bytes, where the OS tells it (Linux `MemTotal`).
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Fresh training examples for every step, never one that is held out.
#[derive(Debug, Clone)]
pub struct ExampleStream {
    sampler: Sampler,
    held_out: HeldOut,
    seed: u64,
}

impl ExampleStream {
    /// The stream of `sampler`'s examples seeded with `seed`, skipping `held_out`.
    pub fn new(sampler: Sampler, held_out: HeldOut, seed: u64) -> Self {
        Self {
            sampler,
            held_out,
            seed,
        }
    }

    /// The `size` examples of step `step` (0-based): the same for the same (seed, step).
    pub fn batch(&self, step: usize, size: usize) -> Result<Vec<Example>, TaskError> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        // One independent ChaCha stream per step: resuming at step s needs no replay.
        rng.set_stream(step as u64);
        draw(&self.sampler, &mut rng, size, &self.held_out, "train")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{TaskOptions, TaskSpec};
    use crate::TaskKind;

    fn task(kind: TaskKind, size: usize, options: &TaskOptions) -> Task {
        TaskSpec::new(kind, size, options).unwrap().build().unwrap()
    }

    /// Arithmetic over Z_5 with one operator: a space of 100 problems, so held-out problems
    /// come up often and the space runs out.
    fn small_space() -> (Sampler, ChaCha8Rng, HeldOut) {
        let options = TaskOptions {
            modulus: Some(5),
            ..Default::default()
        };
        let sampler = Sampler::new(task(TaskKind::Arithmetic, 1, &options), false).unwrap();
        (sampler, ChaCha8Rng::seed_from_u64(0), HeldOut::default())
    }

    #[test]
    fn a_step_draws_the_same_batch_every_time_and_steps_differ() {
        let sampler = Sampler::new(task(TaskKind::Lis, 6, &TaskOptions::default()), false).unwrap();
        let stream = ExampleStream::new(sampler, HeldOut::default(), 7);
        let a = stream.batch(3, 16).unwrap();
        assert_eq!(a, stream.batch(3, 16).unwrap());
        assert_ne!(a, stream.batch(4, 16).unwrap());
        let other_seed = ExampleStream::new(stream.sampler.clone(), HeldOut::default(), 8);
        assert_ne!(a, other_seed.batch(3, 16).unwrap());
    }

    #[test]
    fn held_out_examples_are_never_streamed() {
        let (sampler, mut rng, mut held_out) = small_space();
        let test = draw_distinct(&sampler, &mut rng, 40, &mut held_out, "test").unwrap();
        assert_eq!(held_out.len(), 40, "distinct draws hold each other out");
        let stream = ExampleStream::new(sampler, HeldOut::new(&test), 1);
        let mut seen_any = false;
        for step in 0..50 {
            for example in stream.batch(step, 32).unwrap() {
                assert!(
                    !test.contains(&example),
                    "step {step} trained on a test example"
                );
                seen_any = true;
            }
        }
        assert!(seen_any);
    }

    #[test]
    fn an_exhausted_space_is_an_error() {
        let (sampler, mut rng, mut held_out) = small_space();
        let err = draw_distinct(&sampler, &mut rng, 1000, &mut held_out, "validation").unwrap_err();
        assert!(
            matches!(
                err,
                TaskError::SpaceExhausted {
                    split: "validation",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn held_out_share_is_measured_and_a_dominant_one_is_an_error() {
        let (sampler, mut rng, mut held_out) = small_space();
        assert_eq!(held_out.share_of_draws(&sampler, 500, 0), 0.0);
        held_out.check_room_to_train(&sampler).unwrap();
        draw_distinct(&sampler, &mut rng, 20, &mut held_out, "test").unwrap();
        let some = held_out.share_of_draws(&sampler, HELD_OUT_PROBE, 0);
        assert!(some > 0.0 && some <= MAX_HELD_OUT_SHARE, "{some}");
        held_out.check_room_to_train(&sampler).unwrap();
        // 80 of the 100 problems: most draws are held out.
        draw_distinct(&sampler, &mut rng, 60, &mut held_out, "validation").unwrap();
        let most = held_out.share_of_draws(&sampler, HELD_OUT_PROBE, 0);
        assert!(most > MAX_HELD_OUT_SHARE, "{most}");
        let err = held_out.check_room_to_train(&sampler).unwrap_err();
        assert!(
            matches!(err, TaskError::HeldOutDominates { held_out: 80, .. }),
            "{err}"
        );
    }

    #[test]
    fn more_examples_than_memory_holds_is_an_error_not_an_abort() {
        // `--train-examples 100000000000` aborted on a failed allocation of 3.2 TB.
        let (sampler, mut rng, held_out) = small_space();
        for count in [100_000_000_000, usize::MAX / 2] {
            let err = draw(&sampler, &mut rng, count, &held_out, "train").unwrap_err();
            assert!(
                matches!(err, TaskError::TooManyExamples { split: "train", .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn smaller_sizes_are_mixed_into_arithmetic_only() {
        let arithmetic = task(TaskKind::Arithmetic, 4, &TaskOptions::default());
        let sampler = Sampler::new(arithmetic.clone(), true).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let operators = |e: &Example| {
            // The prompt `expr =`: count the operator tokens of the expression.
            e.prompt().iter().filter(|&&t| (3..=6).contains(&t)).count()
        };
        let counts: Vec<usize> = (0..2000)
            .map(|_| operators(&sampler.sample(&mut rng)))
            .collect();
        for n in 1..=4 {
            let share = counts.iter().filter(|&&c| c == n).count() as f64 / 2000.0;
            let expected = n as f64 / 10.0;
            assert!((share - expected).abs() < 0.04, "{n} operators: {share}");
        }
        let lis = task(TaskKind::Lis, 4, &TaskOptions::default());
        assert!(Sampler::new(lis, true).is_err());
    }
}
