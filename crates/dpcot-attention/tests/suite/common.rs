//! Shared test helpers: deterministic data, comparisons, kernels under test.

use std::sync::{Mutex, MutexGuard, PoisonError};

use dpcot_attention::burn::tensor::{Device, Tensor, TensorData};
use dpcot_attention::{
    AttentionKernel, LinearParams, SlidingWindowParams, SparseParams, SparsePattern,
};

/// Max abs difference allowed between an efficient kernel and its reference (f32).
pub const TOL: f32 = 1e-4;

/// The device every test runs on: burn's default device. burn's `BURN_DEVICE` environment
/// variable (`flex`, `ndarray`, `wgpu`, `cuda`) sets it to one compiled-in backend, and burn
/// panics if that backend is not compiled in; unset, it is the first compiled of cuda, wgpu,
/// flex, ndarray. `backend::the_device_under_test_is_the_one_burn_device_names` checks it.
pub fn device() -> Device {
    Device::default()
}

/// Serialises the tests that use burn's random number generator. It is one per process on
/// burn-ndarray and wgpu (a device's seed is global), and a test that seeds it and then expects
/// particular draws (the dropout tests, where every backend but flex falls back to burn's
/// dropout) fails if another test draws in between, e.g. to initialise a module. So every test
/// that seeds or draws from it holds this guard for its whole body (a test, or the one helper of
/// it that does; never both, since the lock is not reentrant).
pub fn burn_rng() -> MutexGuard<'static, ()> {
    static RNG: Mutex<()> = Mutex::new(());
    RNG.lock().unwrap_or_else(PoisonError::into_inner)
}

/// splitmix64: deterministic, dependency-free test data.
pub struct DataRng(u64);

impl DataRng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-scale, scale)`.
    pub fn uniform(&mut self, scale: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * scale
    }

    pub fn tensor<const D: usize>(
        &mut self,
        shape: [usize; D],
        scale: f32,
        device: &Device,
    ) -> Tensor<D> {
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.uniform(scale)).collect();
        Tensor::from_data(TensorData::new(data, shape), device)
    }
}

pub fn to_vec<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_to_vec::<f32>().expect("f32 tensor data")
}

pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    to_vec(a)
        .iter()
        .zip(to_vec(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn max_abs<const D: usize>(a: Tensor<D>) -> f32 {
    to_vec(a).iter().map(|x| x.abs()).fold(0.0, f32::max)
}

/// `max |a - b| <= TOL · max(1, max |b|)`, so large-magnitude gradients get a relative bound.
pub fn assert_close<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
    let scale = max_abs(b.clone()).max(1.0);
    let diff = max_abs_diff(a, b);
    assert!(
        diff <= TOL * scale,
        "{what}: max abs diff {diff:e} > {TOL:e} · {scale}"
    );
}

pub fn sparse(block: usize, c: usize, pattern: SparsePattern) -> AttentionKernel {
    AttentionKernel::Sparse(SparseParams::new(block, c, pattern).expect("valid sparse params"))
}

pub fn linear(chunk: usize) -> AttentionKernel {
    AttentionKernel::Linear(LinearParams::new(chunk, 1e-6).expect("valid linear params"))
}

pub fn sliding(window: usize) -> AttentionKernel {
    AttentionKernel::SlidingWindow(SlidingWindowParams::new(window).expect("valid window"))
}

/// Random `q, k, v: [batch, heads, len, d]` with entries in `[-1, 1)` (q, k scaled up a little
/// so softmax weights are far from uniform).
pub fn qkv(
    rng: &mut DataRng,
    batch: usize,
    heads: usize,
    len: usize,
    d: usize,
    device: &Device,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let shape = [batch, heads, len, d];
    (
        rng.tensor(shape, 1.5, device),
        rng.tensor(shape, 1.5, device),
        rng.tensor(shape, 1.0, device),
    )
}
