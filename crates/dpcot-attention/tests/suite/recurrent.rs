//! The recurrent mixers: chunked and scanned training forms against their token-by-token
//! recurrences (outputs and gradients, proptest over shapes and chunk sizes), the kernels against
//! reference values from `scripts/recurrent_reference.py`, decoding against the parallel
//! forward, negative controls, and config errors.

use proptest::prelude::*;

use crate::common::*;
use dpcot_attention::burn::tensor::activation::log_sigmoid;
use dpcot_attention::burn::tensor::{Device, Tensor, TensorData};
use dpcot_attention::fused::{self, composed};
use dpcot_attention::recurrent::delta_net::{self, delta_rule};
use dpcot_attention::recurrent::gla::{self, gla_attention};
use dpcot_attention::recurrent::mamba::{naive_scan, selective_scan};
use dpcot_attention::{
    AttentionError, AttentionKind, CausalSelfAttentionConfig, RecurrentMixerConfig,
};

/// Log-gates in `[-3·strength, 0)`, as `log σ(·)` gives.
fn log_gates(rng: &mut DataRng, shape: [usize; 4], strength: f32, device: &Device) -> Tensor<4> {
    log_sigmoid(rng.tensor(shape, 4.0, device)).mul_scalar(strength)
}

/// Keys of unit norm, as DeltaNet's layer makes them.
fn unit_keys(rng: &mut DataRng, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let k = rng.tensor(shape, 1.0, device);
    let norm = k.clone().square().sum_dim(3).sqrt();
    k.div(norm)
}

/// Strengths in `(0, max)`.
fn strengths(rng: &mut DataRng, [b, h, l]: [usize; 3], max: f32, device: &Device) -> Tensor<4> {
    rng.tensor([b, h, l, 1], 0.5, device)
        .add_scalar(0.5)
        .mul_scalar(max)
}

/// Gradients of `Σ f(inputs) ⊙ r` for a fixed random read-out `r`, w.r.t. every input.
fn grads_of(
    inputs: &[Tensor<4>],
    f: impl Fn(Vec<Tensor<4>>) -> Tensor<4>,
    device: &Device,
) -> Vec<Tensor<4>> {
    let tracked: Vec<Tensor<4>> = inputs
        .iter()
        .map(|x| Tensor::from_data(x.to_data(), device).require_grad())
        .collect();
    let out = f(tracked.clone());
    let readout = DataRng::new(99).tensor(out.dims(), 1.0, device);
    let grads = (out * readout).sum().backward();
    tracked
        .iter()
        .map(|x| Tensor::from_data(x.grad(&grads).expect("leaf gradient").into_data(), device))
        .collect()
}

fn check_gla(b: usize, h: usize, l: usize, d: usize, chunk: usize, strength: f32, seed: u64) {
    let device = device();
    let mut rng = DataRng::new(seed);
    let shape = [b, h, l, d];
    let q = rng.tensor(shape, 1.0, &device);
    let k = rng.tensor(shape, 1.0, &device);
    let v = rng.tensor(shape, 1.0, &device);
    let g = log_gates(&mut rng, shape, strength, &device);
    let what = format!("GLA b={b} h={h} l={l} d={d} chunk={chunk} strength={strength}");
    let ad = device.clone().autodiff();
    assert_close(
        gla_attention(q.clone(), k.clone(), v.clone(), g.clone(), chunk),
        gla::naive(q.clone(), k.clone(), v.clone(), g.clone()),
        &what,
    );
    let inputs = [q, k, v, g];
    let chunked = grads_of(
        &inputs,
        |x| {
            gla_attention(
                x[0].clone(),
                x[1].clone(),
                x[2].clone(),
                x[3].clone(),
                chunk,
            )
        },
        &ad,
    );
    let naive = grads_of(
        &inputs,
        |x| gla::naive(x[0].clone(), x[1].clone(), x[2].clone(), x[3].clone()),
        &ad,
    );
    for (name, (a, r)) in ["dq", "dk", "dv", "dg"]
        .iter()
        .zip(chunked.into_iter().zip(naive))
    {
        assert_close(a, r, &format!("{name} of {what}"));
    }
}

fn check_delta(b: usize, h: usize, l: usize, d: usize, chunk: usize, max_beta: f32, seed: u64) {
    let device = device();
    let mut rng = DataRng::new(seed);
    let shape = [b, h, l, d];
    let q = rng.tensor(shape, 1.0, &device);
    let k = unit_keys(&mut rng, shape, &device);
    let v = rng.tensor(shape, 1.0, &device);
    let beta = strengths(&mut rng, [b, h, l], max_beta, &device);
    let what = format!("DeltaNet b={b} h={h} l={l} d={d} chunk={chunk} β<{max_beta}");
    let ad = device.clone().autodiff();
    assert_close(
        delta_rule(q.clone(), k.clone(), v.clone(), beta.clone(), chunk),
        delta_net::naive(q.clone(), k.clone(), v.clone(), beta.clone()),
        &what,
    );
    let inputs = [q, k, v, beta];
    let chunked = grads_of(
        &inputs,
        |x| {
            delta_rule(
                x[0].clone(),
                x[1].clone(),
                x[2].clone(),
                x[3].clone(),
                chunk,
            )
        },
        &ad,
    );
    let naive = grads_of(
        &inputs,
        |x| delta_net::naive(x[0].clone(), x[1].clone(), x[2].clone(), x[3].clone()),
        &ad,
    );
    for (name, (a, r)) in ["dq", "dk", "dv", "dβ"]
        .iter()
        .zip(chunked.into_iter().zip(naive))
    {
        assert_close(a, r, &format!("{name} of {what}"));
    }
}

/// The fused scan against the composed form: output and the gradients of all five inputs.
fn check_scan(b: usize, l: usize, channels: usize, n: usize, seed: u64) {
    let device = device();
    let mut rng = DataRng::new(seed);
    let u: Tensor<3> = rng.tensor([b, l, channels], 1.0, &device);
    // Δ > 0 as after softplus, A < 0: decays in (0, 1).
    let delta: Tensor<3> = rng.tensor([b, l, channels], 0.5, &device).add_scalar(0.6);
    let a: Tensor<2> = rng.tensor([channels, n], 1.0, &device).sub_scalar(1.5);
    let bm: Tensor<3> = rng.tensor([b, l, n], 1.0, &device);
    let cm: Tensor<3> = rng.tensor([b, l, n], 1.0, &device);
    let what = format!("selective scan b={b} l={l} channels={channels} n={n}");
    type Scan = fn(Tensor<3>, Tensor<3>, Tensor<2>, Tensor<3>, Tensor<3>) -> Tensor<3>;
    let (fused_scan, composed_scan): (Scan, Scan) =
        (fused::selective_scan, composed::selective_scan);
    assert_close(
        fused_scan(u.clone(), delta.clone(), a.clone(), bm.clone(), cm.clone()),
        composed_scan(u.clone(), delta.clone(), a.clone(), bm.clone(), cm.clone()),
        &what,
    );
    let ad = device.clone().autodiff();
    let run = |scan: Scan| {
        let leaf3 = |x: &Tensor<3>| Tensor::<3>::from_data(x.to_data(), &ad).require_grad();
        let (u, delta, bm, cm) = (leaf3(&u), leaf3(&delta), leaf3(&bm), leaf3(&cm));
        let a = Tensor::<2>::from_data(a.to_data(), &ad).require_grad();
        let out = scan(u.clone(), delta.clone(), a.clone(), bm.clone(), cm.clone());
        let readout = DataRng::new(7).tensor(out.dims(), 1.0, &ad);
        let grads = (out * readout).sum().backward();
        let grad3 = |x: &Tensor<3>| {
            Tensor::<3>::from_data(x.grad(&grads).expect("gradient").into_data(), &device)
        };
        let grad_a = Tensor::<2>::from_data(a.grad(&grads).expect("gradient").into_data(), &device);
        ([grad3(&u), grad3(&delta), grad3(&bm), grad3(&cm)], grad_a)
    };
    let (fused_grads, fused_a) = run(fused_scan);
    let (composed_grads, composed_a) = run(composed_scan);
    for (name, (f, c)) in ["du", "dΔ", "dB", "dC"]
        .iter()
        .zip(fused_grads.into_iter().zip(composed_grads))
    {
        assert_close(f, c, &format!("{name} of {what}"));
    }
    assert_close(fused_a, composed_a, &format!("dA of {what}"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn chunked_gla_equals_its_recurrence(
        b in 1usize..=2,
        h in 1usize..=2,
        l in 1usize..=20,
        d in prop_oneof![Just(1usize), Just(4)],
        chunk in 1usize..=8,
        strength in prop_oneof![Just(0.1f32), Just(1.0), Just(8.0)],
        seed in any::<u64>(),
    ) {
        check_gla(b, h, l, d, chunk, strength, seed);
    }

    #[test]
    fn chunked_delta_rule_equals_its_recurrence(
        b in 1usize..=2,
        h in 1usize..=2,
        l in 1usize..=20,
        d in prop_oneof![Just(2usize), Just(4)],
        chunk in 1usize..=9,
        max_beta in prop_oneof![Just(1.0f32), Just(2.0)],
        seed in any::<u64>(),
    ) {
        check_delta(b, h, l, d, chunk, max_beta, seed);
    }

    #[test]
    fn fused_scan_equals_the_loop(
        b in 1usize..=3,
        l in 1usize..=12,
        channels in 1usize..=5,
        n in 1usize..=4,
        seed in any::<u64>(),
    ) {
        check_scan(b, l, channels, n, seed);
    }
}

#[test]
fn kernels_at_the_model_widths() {
    // Head widths of the models (d_model 64 and 128 with 4 heads, and Mamba's inner width).
    check_gla(2, 2, 40, 16, 16, 1.0, 1);
    check_gla(1, 1, 33, 32, 16, 1.0, 2);
    check_delta(2, 2, 40, 16, 16, 1.0, 3);
    check_delta(1, 1, 33, 32, 16, 2.0, 4);
    check_scan(2, 30, 64, 16, 5);
}

// ---------------------------------------------------------------------------------------------
// Reference values

struct Fixture(serde_json::Value);

impl Fixture {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/recurrent_reference.json"
        );
        let text = std::fs::read_to_string(path).expect("the fixture exists");
        Self(serde_json::from_str(&text).expect("the fixture is JSON"))
    }

    fn shape(&self, kernel: &str) -> Vec<usize> {
        self.0[kernel]["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    }

    fn values(&self, kernel: &str, name: &str) -> Vec<f32> {
        self.0[kernel][name]
            .as_array()
            .unwrap_or_else(|| panic!("{kernel}.{name} in the fixture"))
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn tensor<const D: usize>(&self, kernel: &str, name: &str, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.values(kernel, name), shape), &device())
    }
}

/// Max abs difference from the Python reference (f32 against f64 arithmetic).
const REFERENCE_TOL: f32 = 1e-5;

fn assert_matches_reference<const D: usize>(ours: Tensor<D>, reference: Vec<f32>, what: &str) {
    let ours = to_vec(ours);
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let diff = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff <= REFERENCE_TOL,
        "{what}: max abs diff {diff:e} from the reference"
    );
}

#[test]
fn kernels_match_the_reference_recurrences() {
    let fixture = Fixture::load();
    let s: [usize; 4] = fixture.shape("gla").try_into().unwrap();
    let t = |kernel: &str, name: &str| fixture.tensor(kernel, name, s);
    for chunk in [1, 4, 16] {
        let out = gla_attention(
            t("gla", "q"),
            t("gla", "k"),
            t("gla", "v"),
            t("gla", "g"),
            chunk,
        );
        assert_matches_reference(
            out,
            fixture.values("gla", "out"),
            &format!("GLA, chunk {chunk}"),
        );
        for (beta, expected) in [("beta", "out"), ("beta_negative", "out_negative")] {
            let beta = fixture.tensor("delta_rule", beta, [s[0], s[1], s[2], 1]);
            let out = delta_rule(
                t("delta_rule", "q"),
                t("delta_rule", "k"),
                t("delta_rule", "v"),
                beta,
                chunk,
            );
            let what = format!("delta rule ({expected}), chunk {chunk}");
            assert_matches_reference(out, fixture.values("delta_rule", expected), &what);
        }
    }
    let [b, l, di, n]: [usize; 4] = fixture.shape("selective_scan").try_into().unwrap();
    let scan = |name: &str, shape: [usize; 3]| fixture.tensor("selective_scan", name, shape);
    let (u, delta) = (scan("u", [b, l, di]), scan("delta", [b, l, di]));
    let a = fixture.tensor("selective_scan", "a", [di, n]);
    let skip = fixture
        .tensor("selective_scan", "d", [di])
        .reshape([1, 1, di]);
    let (bm, cm) = (scan("b", [b, l, n]), scan("c", [b, l, n]));
    let expected = fixture.values("selective_scan", "out");
    let fused_out = selective_scan(u.clone(), delta.clone(), a.clone(), bm.clone(), cm.clone());
    assert_matches_reference(
        fused_out + u.clone() * skip.clone(),
        expected.clone(),
        "selective scan",
    );
    let naive_out = naive_scan(u.clone(), delta, a, bm, cm);
    assert_matches_reference(naive_out + u * skip, expected, "naive selective scan");
}

// ---------------------------------------------------------------------------------------------
// Layers: decoding equals the parallel forward

fn mixers() -> Vec<AttentionKind> {
    vec![
        AttentionKind::Gla { chunk_size: 4 },
        AttentionKind::DeltaNet {
            chunk_size: 4,
            negative_eigenvalues: false,
        },
        AttentionKind::DeltaNet {
            chunk_size: 3,
            negative_eigenvalues: true,
        },
        AttentionKind::Mamba {
            d_state: 4,
            expand: 2,
            conv_width: 4,
        },
        AttentionKind::Mamba {
            d_state: 3,
            expand: 1,
            conv_width: 1,
        },
    ]
}

fn check_decoding(
    kind: &AttentionKind,
    batch: usize,
    heads: usize,
    d_head: usize,
    len: usize,
    seed: u64,
) {
    let _rng = burn_rng();
    let device = device();
    let d_model = heads * d_head;
    let mixer = RecurrentMixerConfig::new(d_model, heads, kind.clone())
        .init(&device)
        .expect("valid config");
    let x: Tensor<3> = DataRng::new(seed).tensor([batch, len, d_model], 1.0, &device);
    let parallel = mixer.forward(x.clone());
    let mut state = mixer.new_state(batch, &device);
    for t in 0..len {
        let step = mixer
            .forward_step(
                x.clone().slice([0..batch, t..t + 1, 0..d_model]),
                &mut state,
            )
            .expect("matching state");
        let row = parallel.clone().slice([0..batch, t..t + 1, 0..d_model]);
        assert_close(step, row, &format!("{kind:?} position {t} of {len}"));
    }
    assert_eq!(state.len(), len);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn decoding_equals_the_parallel_forward(
        batch in 1usize..=2,
        heads in 1usize..=2,
        d_head in prop_oneof![Just(2usize), Just(4)],
        len in 1usize..=11,
        seed in any::<u64>(),
    ) {
        for kind in mixers() {
            check_decoding(&kind, batch, heads, d_head, len, seed);
        }
    }
}

#[test]
fn mixers_have_gradients_for_every_parameter() {
    let _rng = burn_rng();
    use dpcot_attention::burn::module::{Module, ModuleVisitor, Param};
    struct Missing<'a>(&'a dpcot_attention::burn::tensor::Gradients, Vec<String>);
    impl ModuleVisitor for Missing<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.val().grad(self.0).is_none() {
                self.1.push(format!("{:?}", param.val().dims()));
            }
        }
    }
    let device = device().autodiff();
    for kind in mixers() {
        let mixer = RecurrentMixerConfig::new(8, 2, kind.clone())
            .init(&device)
            .unwrap();
        let x: Tensor<3> = DataRng::new(3).tensor([2, 9, 8], 1.0, &device);
        let grads = mixer.forward(x).sum().backward();
        let mut missing = Missing(&grads, Vec::new());
        mixer.visit(&mut missing);
        assert!(
            missing.1.is_empty(),
            "{kind:?}: no gradient for parameters {:?}",
            missing.1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Negative controls: what the tolerance would catch

#[test]
fn a_shifted_gate_is_caught() {
    let device = device();
    let mut rng = DataRng::new(11);
    let shape = [1, 2, 12, 4];
    let (q, k, v) = (
        rng.tensor(shape, 1.0, &device),
        rng.tensor(shape, 1.0, &device),
        rng.tensor(shape, 1.0, &device),
    );
    let g = log_gates(&mut rng, shape, 1.0, &device);
    // The gate of the next token instead of this one's.
    let shifted = Tensor::cat(
        vec![
            g.clone().slice_dim(2, 1..12),
            g.clone().slice_dim(2, 11..12),
        ],
        2,
    );
    let right = gla::naive(q.clone(), k.clone(), v.clone(), g);
    let wrong = gla_attention(q, k, v, shifted, 4);
    assert!(max_abs_diff(right, wrong) > 100.0 * TOL);
}

#[test]
fn the_delta_rule_is_not_plain_linear_attention() {
    // With β = 1 and repeated keys, the delta rule overwrites where linear attention adds: the
    // chunked form must not reduce to the latter.
    let device = device();
    let mut rng = DataRng::new(12);
    let shape = [1, 1, 10, 4];
    let q = rng.tensor(shape, 1.0, &device);
    let k = unit_keys(&mut rng, [1, 1, 1, 4], &device).repeat_dim(2, 10);
    let v = rng.tensor(shape, 1.0, &device);
    let beta = Tensor::ones([1, 1, 10, 1], &device);
    let delta = delta_rule(q.clone(), k.clone(), v.clone(), beta, 4);
    let additive = q
        .clone()
        .matmul(k.clone().swap_dims(2, 3))
        .tril(0)
        .matmul(v.clone());
    assert!(max_abs_diff(delta.clone(), additive) > 100.0 * TOL);
    // …and with one repeated unit key and β = 1 the state is `k v_tᵀ`, the latest value only,
    // so `o_t = (qᵀk) v_t`.
    let latest = (q * k).sum_dim(3) * v;
    assert_close(delta, latest, "β = 1 keeps the latest value");
}

#[test]
fn a_mamba_state_reset_between_tokens_is_caught() {
    let _rng = burn_rng();
    // Decoding each token from a fresh state (no convolution window, no h) must not match the
    // parallel forward: the tolerance of the decoding test would catch a state that is lost.
    let device = device();
    let mixer = RecurrentMixerConfig::new(8, 1, AttentionKind::mamba())
        .init(&device)
        .unwrap();
    let x: Tensor<3> = DataRng::new(13).tensor([2, 6, 8], 2.0, &device);
    let parallel = mixer.forward(x.clone());
    let forgetful: Vec<Tensor<3>> = (0..6)
        .map(|t| {
            let mut fresh = mixer.new_state(2, &device);
            mixer
                .forward_step(x.clone().slice_dim(1, t..t + 1), &mut fresh)
                .expect("matching state")
        })
        .collect();
    let diff = max_abs_diff(Tensor::cat(forgetful, 1), parallel);
    assert!(diff > 100.0 * TOL, "max abs diff {diff:e}");
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn bad_mixer_configs_are_errors() {
    let _rng = burn_rng();
    let device = device();
    let invalid = |config: RecurrentMixerConfig, field: &str| match config.init(&device) {
        Err(AttentionError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected an error on `{field}`, got {other:?}"),
    };
    invalid(
        RecurrentMixerConfig::new(8, 3, AttentionKind::gla()),
        "n_heads",
    );
    invalid(
        RecurrentMixerConfig::new(8, 2, AttentionKind::Gla { chunk_size: 0 }),
        "chunk_size",
    );
    invalid(
        RecurrentMixerConfig::new(
            8,
            2,
            AttentionKind::DeltaNet {
                chunk_size: 0,
                negative_eigenvalues: false,
            },
        ),
        "chunk_size",
    );
    invalid(
        RecurrentMixerConfig::new(
            8,
            2,
            AttentionKind::Mamba {
                d_state: 0,
                expand: 2,
                conv_width: 4,
            },
        ),
        "d_state",
    );
    invalid(
        RecurrentMixerConfig::new(8, 2, AttentionKind::Softmax),
        "kind",
    );
    // Mamba has no heads: any count is fine.
    assert!(RecurrentMixerConfig::new(8, 3, AttentionKind::mamba())
        .init(&device)
        .is_ok());
    // …and attention layers refuse the recurrent kinds.
    let err = CausalSelfAttentionConfig::new(8, 2, 16)
        .with_kind(AttentionKind::delta_net())
        .init(&device)
        .unwrap_err();
    assert!(err.to_string().contains("recurrent mixer"), "{err}");
}

#[test]
fn a_state_of_another_mixer_is_refused() {
    let _rng = burn_rng();
    let device = device();
    let gla = RecurrentMixerConfig::new(8, 2, AttentionKind::gla())
        .init(&device)
        .unwrap();
    let mamba = RecurrentMixerConfig::new(8, 2, AttentionKind::mamba())
        .init(&device)
        .unwrap();
    let mut state = mamba.new_state(1, &device);
    let x: Tensor<3> = Tensor::zeros([1, 1, 8], &device);
    assert!(matches!(
        gla.forward_step(x.clone(), &mut state),
        Err(AttentionError::CacheMismatch { .. })
    ));
    let mut state = gla.new_state(2, &device);
    assert!(matches!(
        gla.forward_step(x, &mut state),
        Err(AttentionError::ShapeMismatch { .. })
    ));
}

#[test]
fn recurrent_kinds_round_trip_through_config_files() {
    for kind in [
        AttentionKind::gla(),
        AttentionKind::delta_net(),
        AttentionKind::mamba(),
    ] {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(
            serde_json::from_str::<AttentionKind>(&json).unwrap(),
            kind,
            "{json}"
        );
        assert!(kind.is_recurrent());
    }
    let kind: AttentionKind =
        serde_json::from_str(r#"{"kind":"delta_net","negative_eigenvalues":true}"#).unwrap();
    assert_eq!(
        kind,
        AttentionKind::DeltaNet {
            chunk_size: 8,
            negative_eigenvalues: true
        }
    );
    assert!(!AttentionKind::Softmax.is_recurrent());
}

#[test]
fn state_sizes_do_not_grow_and_flops_are_linear_in_length() {
    let _rng = burn_rng();
    let device = device();
    for kind in [
        AttentionKind::gla(),
        AttentionKind::delta_net(),
        AttentionKind::mamba(),
    ] {
        let mixer = RecurrentMixerConfig::new(32, 4, kind.clone())
            .init(&device)
            .unwrap();
        let floats = mixer.state_floats();
        match kind {
            AttentionKind::Mamba { .. } => assert_eq!(floats, 64 * 16 + 3 * 64),
            _ => assert_eq!(floats, 4 * 8 * 8),
        }
        // Affine in the length (at whole chunks), unlike softmax attention's quadratic cost;
        // a decoding step costs the same at every position.
        let f = |l: usize| mixer.forward_flops(l);
        assert_eq!(f(768) - f(512), f(512) - f(256), "{kind:?}");
        assert!(mixer.step_flops() > 0);
        assert_eq!(mixer.forward_flops(0), 0);
    }
}
