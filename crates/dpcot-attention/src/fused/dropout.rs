//! Dropout masks from our own counter-based generator.
//!
//! burn's dropout samples a Bernoulli mask from one process-global generator (about 11 ns per
//! element on burn-flex, docs/performance.md), so a run's masks depend on everything else that
//! draws from it. Here a mask is a pure function of a 64-bit key and the element's index: element
//! `i` is kept when `hash(key, i) ≥ p·2³²`. The hash is two rounds of a 32-bit integer
//! finaliser, which vectorises (and is split over threads) like any element-wise kernel, and the
//! backward pass regenerates the same mask from the key instead of storing it.
//!
//! Keys come from a per-thread stream: [`seed_dropout`] sets a seed, and every dropout call
//! after it takes the next key of that seed. The training loop seeds each step with (run seed,
//! step), so a step's masks depend on nothing but those two numbers and the order of the
//! model's dropout calls, and a resumed run draws the same ones.

use std::cell::Cell;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

thread_local! {
    /// The seed of this thread's dropout stream and the number of keys taken from it.
    static STREAM: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Seeds this thread's dropout masks: the dropout calls that follow take keys
/// `(seed, 0), (seed, 1), …` in order.
pub fn seed_dropout(seed: u64) {
    STREAM.with(|stream| stream.set((seed, 0)));
}

/// The key of the next dropout call on this thread.
pub(crate) fn next_key() -> u64 {
    STREAM.with(|stream| {
        let (seed, taken) = stream.get();
        stream.set((seed, taken + 1));
        splitmix64(seed ^ splitmix64(taken))
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// murmur3's 32-bit finaliser: every input bit flips each output bit with probability ≈ ½.
#[inline(always)]
fn fmix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x85EB_CA6B);
    x ^= x >> 13;
    x = x.wrapping_mul(0xC2B2_AE35);
    x ^ (x >> 16)
}

/// The mask bits of element `index` under `key`: uniform on `u32`. ([`apply_mask`] computes this
/// per run with [`run_key`] and [`mixed`]; a test holds it to this definition.)
#[inline(always)]
fn mask_bits(key: u64, index: u64) -> u32 {
    let (low, high) = run_key(key, index);
    mixed(low, high, index as u32)
}

/// The two 32-bit halves of `key` with the high half of `index` folded in: constant over any run
/// of indices that does not cross a multiple of 2³² (the kernel's runs never do), so the inner
/// loop works on 32-bit lanes only.
#[inline(always)]
fn run_key(key: u64, index: u64) -> (u32, u32) {
    (key as u32, (key >> 32) as u32 ^ (index >> 32) as u32)
}

#[inline(always)]
fn mixed(low: u32, high: u32, index: u32) -> u32 {
    fmix32(fmix32(index ^ low).wrapping_add(high))
}

/// The dropout mask of one key, element by element: for kernels that drop values as they
/// compute them (the fused attention) rather than a whole tensor at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mask {
    key: u64,
    threshold: u32,
    scale: f32,
}

impl Mask {
    /// The mask [`apply_mask`] applies with `key` and `prob`.
    pub(crate) fn new(key: u64, prob: f64) -> Self {
        Self {
            key,
            threshold: threshold(prob),
            scale: keep_scale(prob),
        }
    }

    /// What element `index` is multiplied by: `1/(1 − prob)` if kept, 0 if dropped.
    #[inline(always)]
    pub(crate) fn factor(&self, index: u64) -> f32 {
        ((mask_bits(self.key, index) >= self.threshold) as u32 as f32) * self.scale
    }
}

/// The factor kept elements are scaled by.
fn keep_scale(prob: f64) -> f32 {
    if prob < 1.0 {
        (1.0 / (1.0 - prob)) as f32
    } else {
        0.0
    }
}

/// The threshold below which an element is dropped with probability `prob`.
fn threshold(prob: f64) -> u32 {
    (prob.clamp(0.0, 1.0) * 4_294_967_296.0).min(u32::MAX as f64) as u32
}

/// Elements per rayon task: large enough to amortise the task, and fixed so that the work split
/// never depends on the number of threads (the result would not anyway: masks are per index).
/// A power of two, so that no run crosses a multiple of 2³² ([`run_key`]).
const CHUNK: usize = 1 << 15;

/// One run of [`apply_mask`] starting at element `start`, as a pulp kernel: `with_simd` is
/// compiled for the machine's best instruction set, and the loop, inlined into it, vectorises.
struct MaskRun<'a> {
    input: &'a [f32],
    output: &'a mut [f32],
    start: usize,
    key: u64,
    threshold: u32,
    scale: f32,
}

impl WithSimd for MaskRun<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let (low, high) = run_key(self.key, self.start as u64);
        let first = self.start as u32;
        let n = self.output.len().min(self.input.len());
        let (input, output) = (&self.input[..n], &mut self.output[..n]);
        for i in 0..n {
            let bits = mixed(low, high, first.wrapping_add(i as u32));
            // Multiplying by 0 or 1 (not a branch) keeps the loop a straight vector loop.
            let kept = (bits >= self.threshold) as u32 as f32;
            output[i] = input[i] * (kept * self.scale);
        }
    }
}

/// `output = input · mask / (1 − prob)` with the mask of `key`: the forward pass on the
/// activations and, with the same key, the backward pass on their gradient.
pub(crate) fn apply_mask(input: &[f32], output: &mut [f32], key: u64, prob: f64) {
    assert_eq!(
        input.len(),
        output.len(),
        "dropout: input and output lengths"
    );
    let threshold = threshold(prob);
    let scale = keep_scale(prob);
    let run = |start: usize, input: &[f32], output: &mut [f32]| {
        pulp::Arch::new().dispatch(MaskRun {
            input,
            output,
            start,
            key,
            threshold,
            scale,
        })
    };
    if input.len() <= CHUNK {
        run(0, input, output);
    } else {
        output
            .par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(chunk, (output, input))| run(chunk * CHUNK, input, output));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dropped_share_is_the_probability() {
        let n = 200_000;
        let ones = vec![1.0f32; n];
        for prob in [0.1, 0.5, 0.9] {
            let mut out = vec![0.0; n];
            apply_mask(&ones, &mut out, 42, prob);
            let dropped = out.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
            // 5 standard deviations of a binomial share at n = 200 000: at most 0.0056.
            assert!(
                (dropped - prob).abs() < 0.006,
                "p = {prob}: dropped {dropped}"
            );
            let kept = (1.0 / (1.0 - prob)) as f32;
            assert!(out.iter().all(|&v| v == 0.0 || v == kept));
        }
    }

    #[test]
    fn masks_depend_on_the_key_and_not_on_the_split() {
        let n = 3 * CHUNK + 17;
        let x: Vec<f32> = (0..n).map(|i| 1.0 + i as f32).collect();
        let mask = |key| {
            let mut out = vec![0.0; n];
            apply_mask(&x, &mut out, key, 0.5);
            out
        };
        assert_eq!(mask(7), mask(7));
        let differ = mask(7)
            .iter()
            .zip(mask(8))
            .filter(|(a, b)| **a != *b)
            .count();
        assert!(
            differ > n / 3,
            "keys 7 and 8 differ at only {differ} of {n}"
        );
        // One thread gives the same mask as the default pool.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(pool.install(|| mask(7)), mask(7));
        // A prefix computed alone is the prefix of the whole.
        let mut short = vec![0.0; 100];
        apply_mask(&x[..100], &mut short, 7, 0.5);
        assert_eq!(short, mask(7)[..100]);
    }

    #[test]
    fn neighbouring_masks_are_uncorrelated() {
        // Adjacent elements and adjacent keys must not repeat each other's decisions.
        let n = 100_000;
        let ones = vec![1.0f32; n];
        let mut a = vec![0.0; n];
        let mut b = vec![0.0; n];
        apply_mask(&ones, &mut a, 1, 0.5);
        apply_mask(&ones, &mut b, 2, 0.5);
        let agree_keys = a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / n as f64;
        let agree_next = a.windows(2).filter(|w| w[0] == w[1]).count() as f64 / (n - 1) as f64;
        for share in [agree_keys, agree_next] {
            assert!((share - 0.5).abs() < 0.01, "{share}");
        }
    }

    #[test]
    fn the_kernel_follows_the_per_index_definition() {
        // A run past 2³², where the high half of the index enters the key.
        let input = vec![1.0f32; 1000];
        let mut output = vec![0.0; 1000];
        let (key, prob, start) = (0xDEAD_BEEF_0123_4567, 0.5, (1usize << 32) + 3 * CHUNK);
        pulp::Arch::new().dispatch(MaskRun {
            input: &input,
            output: &mut output,
            start,
            key,
            threshold: threshold(prob),
            scale: 2.0,
        });
        for (i, y) in output.iter().enumerate() {
            let kept = mask_bits(key, (start + i) as u64) >= threshold(prob);
            assert_eq!(*y, if kept { 2.0 } else { 0.0 }, "element {i}");
        }
    }

    #[test]
    fn the_stream_restarts_at_each_seed() {
        seed_dropout(3);
        let first = (next_key(), next_key());
        seed_dropout(3);
        assert_eq!(first, (next_key(), next_key()));
        assert_ne!(first.0, first.1);
        seed_dropout(4);
        assert_ne!(next_key(), first.0);
    }
}
