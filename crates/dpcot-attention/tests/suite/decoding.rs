//! Token-by-token decoding through `CausalSelfAttention::forward_step` equals the parallel
//! forward at every position, for every variant, projections included.

use proptest::prelude::*;

use crate::common::*;
use dpcot_attention::burn::tensor::Tensor;
use dpcot_attention::{AttentionError, AttentionKind, CausalSelfAttentionConfig, SparsePattern};

fn kinds(block: usize, window: usize, chunk: usize) -> Vec<AttentionKind> {
    vec![
        AttentionKind::Softmax,
        AttentionKind::Sparse {
            block_size: Some(block),
            summary_width: 1.max(block / 2),
            pattern: SparsePattern::Fixed,
        },
        AttentionKind::Sparse {
            block_size: Some(block),
            summary_width: 1,
            pattern: SparsePattern::Strided,
        },
        AttentionKind::Linear {
            chunk_size: chunk,
            eps: 1e-6,
        },
        AttentionKind::SlidingWindow { window },
    ]
}

fn check_decoding(
    kind: AttentionKind,
    batch: usize,
    heads: usize,
    d_head: usize,
    len: usize,
    capacity: usize,
    seed: u64,
) {
    let _rng = burn_rng();
    let device = device();
    let d_model = heads * d_head;
    let attn = CausalSelfAttentionConfig::new(d_model, heads, capacity)
        .with_kind(kind.clone())
        .init(&device)
        .expect("valid config");
    let mut rng = DataRng::new(seed);
    let x: Tensor<3> = rng.tensor([batch, len, d_model], 1.0, &device);
    let parallel = attn.forward(x.clone());
    let mut cache = attn.new_cache(batch, &device);
    for t in 0..len {
        let step = attn
            .forward_step(
                x.clone().slice([0..batch, t..t + 1, 0..d_model]),
                &mut cache,
            )
            .expect("matching cache");
        let row = parallel.clone().slice([0..batch, t..t + 1, 0..d_model]);
        assert_close(step, row, &format!("{kind:?} position {t} of {len}"));
    }
    assert_eq!(cache.len(), len);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// `capacity` is sometimes smaller than the sequence, so buffer growth is exercised.
    #[test]
    fn incremental_equals_parallel(
        batch in 1usize..=2,
        heads in 1usize..=3,
        d_head in prop_oneof![Just(2usize), Just(4)],
        len in 1usize..=30,
        block in 1usize..=6,
        window in 1usize..=8,
        chunk in 1usize..=8,
        capacity in 1usize..=32,
        seed in any::<u64>(),
    ) {
        for kind in kinds(block, window, chunk) {
            check_decoding(kind, batch, heads, d_head, len, capacity, seed);
        }
    }
}

/// Default block size (None → ⌈√max_len⌉) and a longer run.
#[test]
fn default_block_size_decoding() {
    let kind = AttentionKind::Sparse {
        block_size: None,
        summary_width: 1,
        pattern: SparsePattern::Fixed,
    };
    check_decoding(kind, 1, 2, 4, 70, 64, 3);
}

#[test]
fn cache_of_another_variant_is_rejected() {
    let _rng = burn_rng();
    let device = device();
    let softmax = CausalSelfAttentionConfig::new(8, 2, 16)
        .init(&device)
        .expect("valid");
    let linear = CausalSelfAttentionConfig::new(8, 2, 16)
        .with_kind(AttentionKind::Linear {
            chunk_size: 4,
            eps: 1e-6,
        })
        .init(&device)
        .expect("valid");
    let mut cache = linear.new_cache(1, &device);
    let x = Tensor::<3>::zeros([1, 1, 8], &device);
    let err = softmax
        .forward_step(x, &mut cache)
        .expect_err("wrong cache");
    assert!(matches!(err, AttentionError::CacheMismatch { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "decoding cache mismatch: the layer runs softmax but the cache was built for \
         linear (chunk_size 4, eps 0.000001)"
    );
}

#[test]
fn cache_of_the_same_variant_with_other_parameters_is_rejected() {
    let _rng = burn_rng();
    let device = device();
    let window = |w| {
        CausalSelfAttentionConfig::new(8, 2, 16)
            .with_kind(AttentionKind::SlidingWindow { window: w })
            .init(&device)
            .expect("valid")
    };
    let mut cache = window(4).new_cache(1, &device);
    let x = Tensor::<3>::zeros([1, 1, 8], &device);
    let err = window(3)
        .forward_step(x, &mut cache)
        .expect_err("window 4 cache in a window 3 layer");
    assert_eq!(
        err,
        AttentionError::CacheMismatch {
            expected: "sliding_window (window 3)".into(),
            found: "sliding_window (window 4)".into(),
        }
    );
}

#[test]
fn wrong_step_shape_is_rejected() {
    let _rng = burn_rng();
    let device = device();
    let attn = CausalSelfAttentionConfig::new(8, 2, 16)
        .init(&device)
        .expect("valid");
    let mut cache = attn.new_cache(1, &device);
    let two_tokens = Tensor::<3>::zeros([1, 2, 8], &device);
    let err = attn
        .forward_step(two_tokens, &mut cache)
        .expect_err("two tokens");
    assert!(matches!(err, AttentionError::ShapeMismatch { .. }), "{err}");
    let wrong_batch = Tensor::<3>::zeros([3, 1, 8], &device);
    let err = attn
        .forward_step(wrong_batch, &mut cache)
        .expect_err("batch 3 vs 1");
    assert!(matches!(err, AttentionError::ShapeMismatch { .. }), "{err}");
}
