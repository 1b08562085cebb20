//! Decoding caches: one type per variant and an enum over them.

use burn::tensor::{Device, Tensor};

use crate::config::AttentionKernel;
use crate::error::AttentionError;
use crate::kernels::{KvCache, LinearState, SparseCache, WindowCache};

/// The incremental-decoding state of one attention layer.
///
/// Create it with [`AttentionKernel::new_cache`] or
/// [`CausalSelfAttention::new_cache`](crate::CausalSelfAttention::new_cache); feed tokens with
/// [`AttentionKernel::step`] or
/// [`CausalSelfAttention::forward_step`](crate::CausalSelfAttention::forward_step).
#[derive(Debug, Clone)]
pub enum AttentionCache {
    /// All past keys and values.
    Softmax(KvCache),
    /// Current block plus summaries (fixed) or all past rows read sparsely (strided). Boxed
    /// because it holds twice the buffers of the other variants.
    Sparse(Box<SparseCache>),
    /// Recurrent `d×d` state.
    Linear(LinearState),
    /// Ring buffer of the last `w` keys and values.
    SlidingWindow(WindowCache),
}

impl AttentionCache {
    /// Number of tokens consumed so far (the position of the next token).
    pub fn len(&self) -> usize {
        match self {
            Self::Softmax(c) => c.len(),
            Self::Sparse(c) => c.len(),
            Self::Linear(c) => c.len(),
            Self::SlidingWindow(c) => c.len(),
        }
    }

    /// Whether no token has been consumed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kernel this cache was built for.
    pub fn kernel(&self) -> AttentionKernel {
        match self {
            Self::Softmax(_) => AttentionKernel::Softmax,
            Self::Sparse(c) => AttentionKernel::Sparse(c.params()),
            Self::Linear(c) => AttentionKernel::Linear(c.params()),
            Self::SlidingWindow(c) => AttentionKernel::SlidingWindow(c.params()),
        }
    }

    fn row_shape(&self) -> [usize; 3] {
        match self {
            Self::Softmax(c) => c.row_shape(),
            Self::Sparse(c) => c.row_shape(),
            Self::Linear(c) => c.row_shape(),
            Self::SlidingWindow(c) => c.row_shape(),
        }
    }
}

impl AttentionKernel {
    /// An empty decoding cache; `capacity` is the expected number of tokens (caches that keep
    /// history grow past it).
    pub fn new_cache(
        &self,
        batch: usize,
        heads: usize,
        d_head: usize,
        capacity: usize,
        device: &Device,
    ) -> AttentionCache {
        match self {
            Self::Softmax => {
                AttentionCache::Softmax(KvCache::new(batch, heads, d_head, capacity, device))
            }
            Self::Sparse(p) => AttentionCache::Sparse(Box::new(SparseCache::new(
                batch, heads, d_head, capacity, p, device,
            ))),
            Self::Linear(p) => {
                AttentionCache::Linear(LinearState::new(batch, heads, d_head, d_head, p, device))
            }
            Self::SlidingWindow(p) => {
                AttentionCache::SlidingWindow(WindowCache::new(batch, heads, d_head, p, device))
            }
        }
    }

    /// Incremental form: the output for the next token given the cache, which is updated.
    ///
    /// Equal (up to float rounding) to row `cache.len()` of [`forward`](Self::forward) over the
    /// whole prefix.
    ///
    /// - q, k, v: `[batch, heads, 1, d_head]`
    /// - returns `[batch, heads, 1, d_head]`
    pub fn step(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        cache: &mut AttentionCache,
    ) -> Result<Tensor<4>, AttentionError> {
        let [b, h, _, d] = cache_dims(cache);
        for x in [&q, &k, &v] {
            let dims = x.dims();
            if dims != [b, h, 1, d] {
                return Err(AttentionError::ShapeMismatch {
                    context: "attention step input",
                    expected: vec![b, h, 1, d],
                    found: dims.to_vec(),
                });
            }
        }
        match (self, cache) {
            (kernel, cache) if *kernel != cache.kernel() => Err(AttentionError::CacheMismatch {
                expected: kernel.to_string(),
                found: cache.kernel().to_string(),
            }),
            (_, AttentionCache::Softmax(c)) => Ok(c.step(q, k, v)),
            (_, AttentionCache::Sparse(c)) => Ok(c.step(q, k, v)),
            (_, AttentionCache::Linear(c)) => Ok(c.step(q, k, v)),
            (_, AttentionCache::SlidingWindow(c)) => Ok(c.step(q, k, v)),
        }
    }
}

fn cache_dims(cache: &AttentionCache) -> [usize; 4] {
    let [b, h, d] = cache.row_shape();
    [b, h, 1, d]
}
