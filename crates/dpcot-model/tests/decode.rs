//! The incremental (cached) forms against the full forward, per attention kind.

use burn::tensor::{Device, Tensor};
use dpcot_attention::{AttentionKind, SparsePattern};
use dpcot_model::generate::{
    greedy_decode, greedy_decode_full, greedy_decode_full_given, greedy_decode_given,
};
use dpcot_model::transformer::token_tensor;
use dpcot_model::{ModelConfig, ModelError};

const VOCAB: usize = 13;
const MAX_LEN: usize = 23;
const EOS: u32 = 2;

fn kinds() -> Vec<AttentionKind> {
    vec![
        AttentionKind::Softmax,
        AttentionKind::Sparse {
            block_size: Some(4),
            summary_width: 1,
            pattern: SparsePattern::Fixed,
        },
        AttentionKind::Sparse {
            block_size: Some(3),
            summary_width: 1,
            pattern: SparsePattern::Strided,
        },
        AttentionKind::Linear {
            chunk_size: 4,
            eps: 1e-6,
        },
        AttentionKind::SlidingWindow { window: 5 },
    ]
}

/// burn's default device: `BURN_DEVICE` (`flex`, `ndarray`, `wgpu`, `cuda`) sets it to one
/// compiled-in backend (burn panics if it is not compiled in); unset, it is the first compiled
/// of cuda, wgpu, flex, ndarray.
fn device() -> Device {
    Device::default()
}

/// Names the device under test in the log (`cargo test -- --show-output`) and checks that it is
/// the backend `BURN_DEVICE` asks for, so a run meant for one backend cannot pass on another.
#[test]
fn the_device_under_test_is_the_one_burn_device_names() {
    let device = device();
    let found = format!("{device:?}");
    println!("device under test: {found}");
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(identity) = device.identity() {
        println!("adapter: {}", identity.name);
    }
    if let Ok(wanted) = std::env::var("BURN_DEVICE") {
        let variant = match wanted.to_ascii_lowercase().as_str() {
            "flex" => "Flex(",
            "ndarray" => "NdArray(",
            "wgpu" => "Wgpu(",
            "cuda" => "Cuda(",
            other => panic!("BURN_DEVICE={other}: dpcot is tested on flex, ndarray, wgpu or cuda"),
        };
        assert!(
            found.contains(variant),
            "BURN_DEVICE={wanted} but the tests run on {found}"
        );
    }
}

fn model(kind: AttentionKind, seed: u64, device: &Device) -> dpcot_model::Transformer {
    device.seed(seed);
    let mut config = ModelConfig::new(VOCAB, MAX_LEN, 16, kind);
    config.n_layers = 2;
    config.init(device).unwrap()
}

#[test]
fn step_logits_equal_the_parallel_forward_at_every_position() {
    let device = device();
    for kind in kinds() {
        let model = model(kind.clone(), 3, &device);
        let tokens: Vec<u32> = (0..2 * MAX_LEN as u32)
            .map(|i| (i * 7 + 3) % VOCAB as u32)
            .collect();
        let full = model.forward(token_tensor(&tokens, 2, MAX_LEN, &device));
        let mut state = model.new_decode_state(2, &device);
        for t in 0..MAX_LEN {
            let column = [tokens[t], tokens[MAX_LEN + t]];
            let step = model
                .forward_step(token_tensor(&column, 2, 1, &device), &mut state)
                .unwrap();
            let expected = full
                .clone()
                .slice([0..2, t..t + 1, 0..VOCAB])
                .reshape([2, VOCAB]);
            let diff: f32 = (step - expected).abs().max().into_scalar();
            assert!(diff < 1e-4, "{kind:?}: position {t} differs by {diff}");
        }
    }
}

#[test]
fn cached_greedy_decoding_produces_the_full_forward_tokens() {
    let device = device();
    for kind in kinds() {
        for seed in 0..3 {
            let model = model(kind.clone(), seed, &device);
            let prompts: Vec<Vec<u32>> = (0..4u32)
                .map(|i| vec![3 + i, 4, 5 + (i + seed as u32) % 7, 9])
                .collect();
            let cached = greedy_decode(&model, &prompts, EOS, MAX_LEN, &device).unwrap();
            let full = greedy_decode_full(&model, &prompts, EOS, MAX_LEN, &device).unwrap();
            assert_eq!(cached, full, "{kind:?}, seed {seed}");
            for out in &cached {
                assert!(out.len() <= MAX_LEN - 4);
                assert!(
                    !out[..out.len() - 1].contains(&EOS),
                    "decoding stops at the first <eos>"
                );
            }
        }
    }
}

#[test]
fn given_tokens_are_written_and_fed_back_in_cached_decoding_as_in_full() {
    let device = device();
    // Rows 0 and 2 get tokens given at completion positions 0, 1 and 3; the others none.
    let given = |row: usize, index: usize| {
        (row.is_multiple_of(2) && matches!(index, 0 | 1 | 3))
            .then_some(5 + (row + index) as u32 % 4)
    };
    for kind in kinds() {
        let model = model(kind.clone(), 7, &device);
        let prompts: Vec<Vec<u32>> = (0..4u32).map(|i| vec![3 + i, 4, 9]).collect();
        let cached = greedy_decode_given(&model, &prompts, &given, EOS, MAX_LEN, &device).unwrap();
        let full =
            greedy_decode_full_given(&model, &prompts, &given, EOS, MAX_LEN, &device).unwrap();
        assert_eq!(cached, full, "{kind:?}");
        let free = greedy_decode(&model, &prompts, EOS, MAX_LEN, &device).unwrap();
        for (row, out) in cached.iter().enumerate() {
            if row % 2 == 1 {
                assert_eq!(out, &free[row], "{kind:?}: row {row} has nothing given");
                continue;
            }
            for index in [0, 1] {
                assert_eq!(Some(out[index]), given(row, index), "{kind:?}: row {row}");
            }
            if out.len() > 3 {
                assert_eq!(Some(out[3]), given(row, 3), "{kind:?}: row {row}");
            }
        }
    }
}

#[test]
fn bad_prompts_are_errors() {
    let device = device();
    let model = model(AttentionKind::Softmax, 0, &device);
    let err = greedy_decode(&model, &[vec![1, 2], vec![1]], EOS, MAX_LEN, &device).unwrap_err();
    assert!(
        matches!(err, ModelError::MixedPromptLengths { .. }),
        "{err}"
    );
    let err = greedy_decode(&model, &[vec![1, 99]], EOS, MAX_LEN, &device).unwrap_err();
    assert!(
        matches!(err, ModelError::TokenOutOfRange { id: 99, .. }),
        "{err}"
    );
    let err = greedy_decode(&model, &[vec![1; MAX_LEN]], EOS, MAX_LEN, &device).unwrap_err();
    assert!(matches!(err, ModelError::PromptTooLong { .. }), "{err}");
    assert!(greedy_decode(&model, &[], EOS, MAX_LEN, &device)
        .unwrap()
        .is_empty());
}

#[test]
fn training_flags_only_act_on_autodiff_devices() {
    // Dropout must be inactive when evaluating: two forwards agree exactly.
    let device = device();
    let model = model(AttentionKind::Softmax, 1, &device);
    let tokens = token_tensor(&[3, 4, 5, 6], 1, 4, &device);
    let a: Tensor<3> = model.forward(tokens.clone());
    let b = model.forward(tokens);
    assert_eq!(a.into_data(), b.into_data());
}
