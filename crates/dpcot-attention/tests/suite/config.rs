//! Configuration: serde format, defaults and validation errors.

use crate::common::{burn_rng, device};
use dpcot_attention::{
    default_block_size, AttentionError, AttentionKernel, AttentionKind, CausalSelfAttentionConfig,
    SparsePattern,
};

fn invalid_field(result: Result<AttentionKernel, AttentionError>) -> &'static str {
    match result {
        Err(AttentionError::InvalidConfig { field, .. }) => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

fn layer(
    d_model: usize,
    n_heads: usize,
    max_len: usize,
    kind: AttentionKind,
) -> CausalSelfAttentionConfig {
    CausalSelfAttentionConfig::new(d_model, n_heads, max_len).with_kind(kind)
}

#[test]
fn bad_configs_name_the_field() {
    let _rng = burn_rng();
    let sparse = |block_size, summary_width, pattern| AttentionKind::Sparse {
        block_size,
        summary_width,
        pattern,
    };
    let cases: Vec<(CausalSelfAttentionConfig, &str)> = vec![
        (layer(10, 3, 8, AttentionKind::Softmax), "n_heads"),
        (layer(8, 0, 8, AttentionKind::Softmax), "n_heads"),
        (layer(0, 1, 8, AttentionKind::Softmax), "d_model"),
        (layer(8, 2, 0, AttentionKind::Softmax), "max_len"),
        (
            layer(8, 2, 8, sparse(Some(0), 1, SparsePattern::Fixed)),
            "block_size",
        ),
        (
            layer(8, 2, 8, sparse(Some(4), 5, SparsePattern::Fixed)),
            "summary_width",
        ),
        (
            layer(8, 2, 8, sparse(Some(4), 0, SparsePattern::Fixed)),
            "summary_width",
        ),
        (
            layer(8, 2, 8, sparse(Some(4), 2, SparsePattern::Strided)),
            "summary_width",
        ),
        (
            layer(
                8,
                2,
                8,
                AttentionKind::Linear {
                    chunk_size: 0,
                    eps: 1e-6,
                },
            ),
            "chunk_size",
        ),
        (
            layer(
                8,
                2,
                8,
                AttentionKind::Linear {
                    chunk_size: 4,
                    eps: -1.0,
                },
            ),
            "eps",
        ),
        (
            layer(
                8,
                2,
                8,
                AttentionKind::Linear {
                    chunk_size: 4,
                    eps: f64::NAN,
                },
            ),
            "eps",
        ),
        (
            layer(8, 2, 8, AttentionKind::SlidingWindow { window: 0 }),
            "window",
        ),
    ];
    for (config, field) in cases {
        assert_eq!(invalid_field(config.kernel()), field, "{config:?}");
        assert!(config.init(&device()).is_err(), "{config:?}");
    }
}

#[test]
fn error_messages_say_what_and_where() {
    let err = layer(10, 3, 8, AttentionKind::Softmax)
        .kernel()
        .expect_err("10 % 3 != 0");
    let message = err.to_string();
    assert!(
        message.contains("n_heads") && message.contains("10") && message.contains('3'),
        "{message}"
    );
}

#[test]
fn serde_format_and_defaults() {
    let parse = |s: &str| serde_json::from_str::<AttentionKind>(s);
    assert_eq!(
        parse(r#"{"kind":"sparse","block_size":16,"summary_width":1,"pattern":"fixed"}"#)
            .expect("valid"),
        AttentionKind::Sparse {
            block_size: Some(16),
            summary_width: 1,
            pattern: SparsePattern::Fixed
        }
    );
    assert_eq!(
        parse(r#"{"kind":"sparse"}"#).expect("defaults"),
        AttentionKind::Sparse {
            block_size: None,
            summary_width: 1,
            pattern: SparsePattern::Fixed
        }
    );
    assert_eq!(
        parse(r#"{"kind":"linear"}"#).expect("defaults"),
        AttentionKind::Linear {
            chunk_size: 64,
            eps: 1e-6
        }
    );
    assert_eq!(
        parse(r#"{"kind":"sliding_window","window":8}"#).expect("valid"),
        AttentionKind::SlidingWindow { window: 8 }
    );
    assert_eq!(
        parse(r#"{"kind":"softmax"}"#).expect("valid"),
        AttentionKind::Softmax
    );
    assert!(
        parse(r#"{"kind":"sparse","blocksize":16}"#).is_err(),
        "typo must not be ignored"
    );
    assert!(
        parse(r#"{"kind":"sliding_window"}"#).is_err(),
        "window has no default"
    );

    let kind = AttentionKind::Sparse {
        block_size: Some(8),
        summary_width: 2,
        pattern: SparsePattern::Strided,
    };
    let json = serde_json::to_string(&kind).expect("serialize");
    assert_eq!(parse(&json).expect("round trip"), kind);

    let config = layer(
        16,
        4,
        128,
        AttentionKind::Linear {
            chunk_size: 32,
            eps: 1e-5,
        },
    );
    let json = serde_json::to_string(&config).expect("serialize layer config");
    let back: CausalSelfAttentionConfig =
        serde_json::from_str(&json).expect("deserialize layer config");
    assert_eq!(back.kind, config.kind);
}

#[test]
fn default_block_size_is_ceil_sqrt() {
    for (max_len, want) in [
        (1, 1),
        (2, 2),
        (4, 2),
        (5, 3),
        (9, 3),
        (10, 4),
        (256, 16),
        (257, 17),
        (4096, 64),
    ] {
        assert_eq!(default_block_size(max_len), want, "max_len {max_len}");
    }
    let kernel = layer(
        8,
        2,
        100,
        AttentionKind::Sparse {
            block_size: None,
            summary_width: 1,
            pattern: SparsePattern::Fixed,
        },
    )
    .kernel()
    .expect("valid");
    match kernel {
        AttentionKernel::Sparse(p) => assert_eq!(p.block_size(), 10),
        other => panic!("{other:?}"),
    }
}
