//! The fused operations against their composed form: outputs and gradients, with and without
//! autodiff, over random shapes (proptest) and extreme values. On flex the fused kernels run; on
//! the other backends the fallback runs, and must of course agree too.

use crate::common::*;
use dpcot_attention::burn::tensor::{Device, Int, Tensor, TensorData};
use dpcot_attention::fused::{self, composed};
use proptest::prelude::*;

/// Output and input gradients of `op` under a fixed random linear read-out of its output.
fn value_and_grads<const D: usize, const N: usize>(
    inputs: [Tensor<D>; N],
    op: impl Fn([Tensor<D>; N]) -> Tensor<D>,
    readout_seed: u64,
) -> (Tensor<D>, [Tensor<D>; N]) {
    let device = inputs[0].device();
    let tracked = inputs.map(|x| Tensor::from_data(x.into_data(), &device).require_grad());
    let output = op(tracked.clone());
    let readout = DataRng::new(readout_seed).tensor(output.dims(), 1.0, &device);
    let grads = (output.clone() * readout).sum().backward();
    let grads = tracked.map(|x| x.grad(&grads).expect("every input gets a gradient"));
    (
        output.inner(),
        grads.map(|g| Tensor::from_data(g.into_data(), &device)),
    )
}

/// Fused and composed agree on the output and on every input's gradient (autodiff device), and
/// on the output without autodiff.
fn assert_agree<const D: usize, const N: usize>(
    what: &str,
    inputs: [Tensor<D>; N],
    fused_op: impl Fn([Tensor<D>; N]) -> Tensor<D>,
    composed_op: impl Fn([Tensor<D>; N]) -> Tensor<D>,
) {
    let plain = inputs
        .clone()
        .map(|x| Tensor::from_data(x.into_data(), &device()));
    assert_close(
        fused_op(plain.clone()),
        composed_op(plain),
        &format!("{what}: output"),
    );

    let on_autodiff = || {
        let device = device().autodiff();
        inputs
            .clone()
            .map(|x| Tensor::from_data(x.into_data(), &device))
    };
    let (fused_out, fused_grads) = value_and_grads(on_autodiff(), &fused_op, 7);
    let (composed_out, composed_grads) = value_and_grads(on_autodiff(), &composed_op, 7);
    assert_close(
        fused_out,
        composed_out,
        &format!("{what}: output (autodiff)"),
    );
    for (i, (f, c)) in fused_grads.into_iter().zip(composed_grads).enumerate() {
        assert_close(f, c, &format!("{what}: gradient of input {i}"));
    }
}

fn softmax_case(shape: [usize; 4], scale: f32, causal: bool, magnitude: f32, seed: u64) {
    let x = DataRng::new(seed).tensor(shape, magnitude, &device());
    assert_agree(
        &format!("softmax {shape:?} scale {scale} causal {causal} |x| ≤ {magnitude}"),
        [x],
        |[x]| fused::softmax(x, scale, causal),
        |[x]| composed::softmax(x, scale, causal),
    );
}

#[test]
fn fused_kernels_run_on_flex() {
    #[cfg(feature = "flex")]
    {
        assert!(fused::fused_on(&Device::flex()));
        assert!(fused::fused_on(&Device::flex().autodiff()));
    }
    #[cfg(feature = "ndarray")]
    assert!(!fused::fused_on(&Device::ndarray()));
}

#[test]
fn softmax_agrees_at_attention_shapes() {
    for causal in [false, true] {
        softmax_case([2, 4, 17, 17], 0.25, causal, 3.0, 1);
        softmax_case([32, 4, 48, 48], 1.0 / 4.0, causal, 3.0, 2);
    }
}

#[test]
fn softmax_survives_extreme_scores() {
    // Scores of ±1e4 (one entry dominates each row) and rows whose scores are all -1e9 (a fully
    // masked row of a sparse pattern): no NaN, and the masked row is uniform.
    softmax_case([1, 2, 9, 9], 1.0, false, 1.0e4, 3);
    softmax_case([1, 2, 9, 9], 1.0, true, 1.0e4, 4);
    let device = device();
    let masked = Tensor::<2>::full([3, 5], -1.0e9, &device);
    let probabilities = to_vec(fused::softmax(masked, 1.0, false));
    assert!(
        probabilities.iter().all(|&p| (p - 0.2).abs() < 1e-6),
        "{probabilities:?}"
    );
}

#[test]
fn causal_softmax_gives_future_keys_exactly_zero() {
    let device = device();
    let l = 6;
    let x = DataRng::new(5).tensor([1, 1, l, l], 2.0, &device);
    let p = to_vec(fused::softmax(x, 1.0, true));
    for i in 0..l {
        for j in 0..l {
            assert_eq!(
                p[i * l + j] == 0.0,
                j > i,
                "row {i}, key {j}: {}",
                p[i * l + j]
            );
        }
    }
}

#[test]
fn a_wrong_mask_is_caught() {
    // Negative control: the causal and the full softmax differ by far more than the tolerance.
    let x = DataRng::new(6).tensor([1, 1, 8, 8], 2.0, &device());
    let diff = max_abs_diff(
        fused::softmax(x.clone(), 1.0, true),
        composed::softmax(x, 1.0, false),
    );
    assert!(diff > 100.0 * TOL, "{diff}");
}

#[test]
fn gelu_agrees_over_a_wide_range() {
    let device = device();
    let values: Vec<f32> = (-600..=600).map(|i| i as f32 * 0.02).collect();
    let n = values.len();
    let x = Tensor::<1>::from_data(TensorData::new(values, [n]), &device);
    assert_agree(
        "gelu",
        [x],
        |[x]| fused::gelu_tanh(x),
        |[x]| composed::gelu_tanh(x),
    );
    // Far out, GELU is the identity (right) or 0 (left), with no NaN from the cube.
    let inputs: [f32; 6] = [-1.0e30, -1.0e4, -50.0, 50.0, 1.0e4, 1.0e30];
    let y = to_vec(fused::gelu_tanh(Tensor::<1>::from_floats(inputs, &device)));
    for (x, y) in inputs.into_iter().zip(y) {
        let want = x.max(0.0);
        assert!((y - want).abs() <= 1e-6 * want.max(1.0), "gelu({x}) = {y}");
    }
}

fn layer_norm_case(rows: usize, d: usize, magnitude: f32, seed: u64) {
    let device = device();
    let mut rng = DataRng::new(seed);
    let x: Tensor<3> = rng.tensor([2, rows, d], magnitude, &device);
    // gamma and beta ride along as [1, 1, d] inputs so that their gradients are compared too.
    let gamma: Tensor<3> = rng.tensor([1, 1, d], 1.0, &device).add_scalar(1.0);
    let beta: Tensor<3> = rng.tensor([1, 1, d], 1.0, &device);
    let flat = |t: Tensor<3>| t.reshape([d]);
    assert_agree(
        &format!("layer_norm [2, {rows}, {d}] |x| ≤ {magnitude}"),
        [x, gamma, beta],
        |[x, g, b]| fused::layer_norm(x, flat(g), Some(flat(b)), 1e-5),
        |[x, g, b]| composed::layer_norm(x, flat(g), Some(flat(b)), 1e-5),
    );
}

#[test]
fn layer_norm_agrees_with_burns() {
    layer_norm_case(21, 64, 1.0, 8);
    layer_norm_case(5, 7, 100.0, 9);
}

#[test]
fn layer_norm_of_a_constant_row_is_beta() {
    let device = device();
    let x = Tensor::<2>::full([2, 4], 3.5, &device);
    let gamma = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], &device);
    let beta = Tensor::<1>::from_floats([0.5, -0.5, 1.5, 0.0], &device);
    let y = fused::layer_norm(x, gamma, Some(beta.clone()), 1e-5);
    assert_close(y, beta.unsqueeze::<2>().repeat_dim(0, 2), "constant rows");
}

/// Fused and composed cross-entropy: the loss, and the gradient of the logits.
fn cross_entropy_case(rows: usize, vocab: usize, magnitude: f32, seed: u64) {
    let device = device();
    let mut rng = DataRng::new(seed);
    let logits: Tensor<2> = rng.tensor([rows, vocab], magnitude, &device);
    let targets: Vec<i64> = (0..rows)
        .map(|_| (rng.next_u64() % vocab as u64) as i64)
        .collect();
    let weights: Vec<f32> = (0..rows).map(|r| (r % 3) as f32 * 0.5).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [rows]), &device);
    let weights = Tensor::<1>::from_data(TensorData::new(weights, [rows]), &device);
    let ad = device.clone().autodiff();
    let run = |op: fn(Tensor<2>, Tensor<1, Int>, Tensor<1>) -> Tensor<1>| {
        let z = Tensor::<2>::from_data(logits.to_data(), &ad).require_grad();
        let t = Tensor::<1, Int>::from_data(targets.to_data(), &ad);
        let w = Tensor::<1>::from_data(weights.to_data(), &ad);
        let loss = op(z.clone(), t, w);
        let grads = loss.clone().mul_scalar(0.75).sum().backward();
        let grad = z.grad(&grads).expect("logits gradient");
        (
            Tensor::<1>::from_data(loss.into_data(), &device),
            Tensor::<2>::from_data(grad.into_data(), &device),
        )
    };
    let (fused_loss, fused_grad) = run(fused::cross_entropy_sum);
    let (composed_loss, composed_grad) = run(composed::cross_entropy_sum);
    let what = format!("cross-entropy [{rows}, {vocab}] |z| ≤ {magnitude}");
    assert_close(fused_loss, composed_loss, &format!("{what}: loss"));
    assert_close(fused_grad, composed_grad, &format!("{what}: gradient"));
}

#[test]
fn cross_entropy_agrees_with_log_softmax_and_gather() {
    cross_entropy_case(96, 64, 3.0, 10);
    cross_entropy_case(7, 5, 1.0e3, 11);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn softmax_agrees_on_random_shapes(
        batch in 1usize..4, l in 1usize..40, causal: bool, magnitude in 0.1f32..30.0, seed: u64,
    ) {
        softmax_case([batch, 2, l, l], 1.0 / 8f32.sqrt(), causal, magnitude, seed);
    }

    // From d = 3: for d = 1 and 2 the input gradient is 0 in exact arithmetic (the normalised
    // row is constant, ±1), so both sides compute rounding noise of size ε·|dy|/σ, which
    // exceeded the tolerance for two close values (|Δx| ≪ 1 with |x| ≈ 20).
    #[test]
    fn layer_norm_agrees_on_random_shapes(rows in 1usize..30, d in 3usize..80, magnitude in 0.1f32..50.0, seed: u64) {
        layer_norm_case(rows, d, magnitude, seed);
    }

    #[test]
    fn cross_entropy_agrees_on_random_shapes(rows in 1usize..50, vocab in 2usize..70, magnitude in 0.1f32..50.0, seed: u64) {
        cross_entropy_case(rows, vocab, magnitude, seed);
    }
}

#[test]
fn dropout_backward_uses_the_forward_mask_and_seeds_repeat_masks() {
    use dpcot_attention::burn::nn::DropoutConfig;
    let _rng = burn_rng();
    let device = device().autodiff();
    let dropout = DropoutConfig::new(0.3).init();
    let x = DataRng::new(12)
        .tensor([4, 33, 17], 1.0, &device)
        .add_scalar(2.0);
    // Seeded as the training loop seeds a step: our stream (flex) and burn's generator (the
    // fallback elsewhere).
    let seed_both = |seed| {
        fused::seed_dropout(seed);
        device.seed(seed);
    };
    let run = |seed| {
        seed_both(seed);
        let x = x.clone().require_grad();
        let y = fused::dropout(x.clone(), &dropout);
        let grads = y.clone().sum().backward();
        (to_vec(y.inner()), to_vec(x.grad(&grads).unwrap()))
    };
    let (y, grad) = run(1);
    let inputs = to_vec(x.clone().inner());
    let kept = 1.0 / 0.7;
    for ((y, g), x) in y.iter().zip(&grad).zip(&inputs) {
        // d(sum y)/dx is the mask scaled: kept where y = x·scale, zero where dropped.
        let expected = if *y == 0.0 { 0.0 } else { kept };
        assert!((g - expected).abs() < 1e-5, "x {x}, y {y}, grad {g}");
        assert!(*y == 0.0 || (y - x * kept).abs() < 1e-5);
    }
    assert_eq!(run(1).0, y, "the same seed draws the same mask");
    assert_ne!(run(2).0, y, "another seed draws another mask");
    // Two calls after one seed take different keys.
    seed_both(1);
    let first = to_vec(fused::dropout(x.clone(), &dropout).inner());
    let second = to_vec(fused::dropout(x.clone(), &dropout).inner());
    assert_ne!(first, second);
    // Without autodiff dropout is the identity.
    let plain = x.inner();
    assert_eq!(
        to_vec(fused::dropout(plain.clone(), &dropout)),
        to_vec(plain)
    );
}

#[test]
fn the_feature_map_agrees_over_a_wide_range() {
    let device = device();
    // Off the kink at 0, where the composed form's clamps give a one-sided subgradient and the
    // fused one the true derivative, 1.
    let values: Vec<f32> = (-500..500).map(|i| i as f32 * 0.03 + 0.013).collect();
    let n = values.len();
    let x = Tensor::<1>::from_data(TensorData::new(values, [n]), &device);
    assert_agree(
        "elu + 1",
        [x],
        |[x]| fused::elu_plus_one(x),
        |[x]| composed::elu_plus_one(x),
    );
    let extreme = Tensor::<1>::from_floats([-1.0e30, -100.0, 0.0, 100.0, 1.0e30], &device);
    let y = to_vec(fused::elu_plus_one(extreme));
    // exp(−100) ≈ 3.7e−44 is subnormal in f32: the fused kernel flushes it to 0, the composed
    // fallback (burn-ndarray's `exp`) keeps it. Either is right; nothing may be NaN or infinite.
    assert!((0.0..1e-40).contains(&y[1]), "elu + 1 at −100: {}", y[1]);
    assert_eq!([y[0], y[2], y[3], y[4]], [0.0, 1.0, 101.0, 1.0e30]);
}

fn attention_case(batch: usize, heads: usize, l: usize, d: usize, seed: u64) {
    let mut rng = DataRng::new(seed);
    let (q, k, v) = qkv(&mut rng, batch, heads, l, d, &device());
    let scale = 1.0 / (d as f32).sqrt();
    assert_agree(
        &format!("causal attention [{batch}, {heads}, {l}, {d}]"),
        [q, k, v],
        |[q, k, v]| fused::causal_attention(q, k, v, scale, None),
        |[q, k, v]| composed::causal_attention(q, k, v, scale, None),
    );
}

#[test]
fn causal_attention_agrees_at_model_shapes() {
    attention_case(2, 4, 21, 8, 13);
    attention_case(3, 2, 48, 16, 14);
    attention_case(1, 1, 1, 4, 15);
    // The head widths of d_model 128 and 256, which the kernel has its own loops for.
    attention_case(1, 2, 37, 32, 17);
    attention_case(1, 1, 33, 64, 18);
}

#[test]
fn causal_attention_drops_what_dropout_of_the_probabilities_drops() {
    // The fused kernel's mask is the one `dropout` draws for the [batch, heads, L, L]
    // probabilities with the same key: seeded alike, the two forms agree, gradients included.
    use dpcot_attention::burn::nn::DropoutConfig;
    let _rng = burn_rng();
    let dropout = DropoutConfig::new(0.25).init();
    let mut rng = DataRng::new(16);
    let (q, k, v) = qkv(&mut rng, 2, 3, 19, 8, &device());
    let scale = 0.35;
    let run = |fused_kernel: bool| {
        let ad = device().autodiff();
        let track = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad).require_grad();
        let (q, k, v) = (track(&q), track(&k), track(&v));
        fused::seed_dropout(99);
        ad.seed(99);
        let out = if fused_kernel {
            fused::causal_attention(q.clone(), k.clone(), v.clone(), scale, Some(&dropout))
        } else {
            let scores = q.clone().matmul(k.clone().swap_dims(2, 3));
            fused::dropout(fused::softmax(scores, scale, true), &dropout).matmul(v.clone())
        };
        let readout = DataRng::new(3).tensor(out.dims(), 1.0, &ad);
        let grads = (out.clone() * readout).sum().backward();
        let grad =
            |t: &Tensor<4>| Tensor::<4>::from_data(t.grad(&grads).unwrap().into_data(), &device());
        [
            Tensor::<4>::from_data(out.into_data(), &device()),
            grad(&q),
            grad(&k),
            grad(&v),
        ]
    };
    let (fused_run, composed_run) = (run(true), run(false));
    for (what, (f, c)) in ["output", "dq", "dk", "dv"]
        .iter()
        .zip(fused_run.into_iter().zip(composed_run))
    {
        assert_close(f, c, &format!("attention with dropout: {what}"));
    }
    // And dropout did act: the undropped attention differs.
    let plain = fused::causal_attention(q.clone(), k.clone(), v.clone(), scale, None);
    let ad = device().autodiff();
    fused::seed_dropout(99);
    ad.seed(99);
    let lift = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad);
    let dropped = fused::causal_attention(lift(&q), lift(&k), lift(&v), scale, Some(&dropout));
    let dropped = Tensor::<4>::from_data(dropped.into_data(), &device());
    assert!(max_abs_diff(plain, dropped) > 1e-2);
}

fn linear_case(rows: usize, d_in: usize, d_out: usize, seed: u64) {
    let mut rng = DataRng::new(seed);
    let x = rng.tensor([rows, d_in], 2.0, &device());
    let w = rng.tensor([d_in, d_out], 0.5, &device());
    let b = rng.tensor([1, d_out], 1.0, &device());
    assert_agree(
        &format!("linear [{rows}, {d_in}] -> {d_out}"),
        [x, w, b],
        |[x, w, b]| fused::linear(x, w, Some(b.reshape([d_out]))),
        |[x, w, b]| composed::linear(x, w, Some(b.reshape([d_out]))),
    );
}

#[test]
fn linear_agrees_at_model_shapes() {
    // One chunk of rows, several with a partial last one, and the model's widths.
    linear_case(5, 16, 48, 31);
    linear_case(300, 32, 96, 32);
    linear_case(1216, 64, 256, 33);
    linear_case(257, 256, 64, 34);
    linear_case(129, 64, 253, 35);
}

#[test]
fn linear_without_bias_is_burns() {
    let mut rng = DataRng::new(36);
    let x = rng.tensor([140, 12], 1.0, &device());
    let w = rng.tensor([12, 7], 1.0, &device());
    assert_close(
        fused::linear(x.clone(), w.clone(), None),
        x.matmul(w),
        "linear without a bias",
    );
}

#[allow(clippy::too_many_arguments)]
fn sparse_case(
    batch: usize,
    heads: usize,
    l: usize,
    d: usize,
    block: usize,
    summaries: usize,
    seed: u64,
) {
    let mut rng = DataRng::new(seed);
    let (q, k, v) = qkv(&mut rng, batch, heads, l, d, &device());
    let scale = 1.0 / (d as f32).sqrt();
    assert_agree(
        &format!("sparse attention [{batch}, {heads}, {l}, {d}] block {block} c {summaries}"),
        [q, k, v],
        |[q, k, v]| fused::sparse_attention(q, k, v, scale, block, summaries, None),
        |[q, k, v]| composed::sparse_attention(q, k, v, scale, block, summaries, None),
    );
}

#[test]
fn sparse_attention_agrees_at_model_shapes() {
    // The quick profile's block sizes: ⌈√L⌉ for L = 9..37.
    sparse_case(2, 4, 21, 8, 5, 1, 21);
    sparse_case(3, 2, 48, 16, 7, 1, 22);
    // A partial last block, several summaries, one block, one position.
    sparse_case(1, 2, 23, 8, 6, 3, 23);
    sparse_case(1, 3, 10, 4, 16, 1, 24);
    sparse_case(1, 1, 1, 4, 1, 1, 25);
    // Blocks of one position: every earlier key is a summary.
    sparse_case(1, 2, 9, 8, 1, 1, 26);
    // The head widths with their own loops.
    sparse_case(1, 2, 37, 32, 7, 2, 27);
    sparse_case(1, 1, 33, 64, 6, 1, 28);
}

#[test]
fn sparse_attention_is_not_dense_attention() {
    // Negative control: past one block the pattern hides keys, so the fused sparse kernel must
    // differ from causal attention over every key (and equal it within one block).
    let mut rng = DataRng::new(29);
    let (q, k, v) = qkv(&mut rng, 1, 2, 20, 8, &device());
    let dense = fused::causal_attention(q.clone(), k.clone(), v.clone(), 0.4, None);
    let sparse = fused::sparse_attention(q.clone(), k.clone(), v.clone(), 0.4, 5, 1, None);
    assert!(max_abs_diff(dense.clone(), sparse) > 1e-2);
    let one_block = fused::sparse_attention(q, k, v, 0.4, 20, 1, None);
    assert_close(dense, one_block, "sparse attention within one block");
}

#[test]
fn sparse_attention_drops_what_the_composed_forms_dropouts_drop() {
    // The kernel's two masks are those the composed form's two dropout calls draw, in the same
    // order, for its local and summary probability tensors: seeded alike, the two agree,
    // gradients included.
    use dpcot_attention::burn::nn::DropoutConfig;
    let _rng = burn_rng();
    let dropout = DropoutConfig::new(0.25).init();
    let mut rng = DataRng::new(30);
    let (q, k, v) = qkv(&mut rng, 2, 3, 19, 8, &device());
    let run = |fused_kernel: bool, block: usize| {
        let ad = device().autodiff();
        let track = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad).require_grad();
        let (q, k, v) = (track(&q), track(&k), track(&v));
        fused::seed_dropout(99);
        ad.seed(99);
        let attend = match fused_kernel {
            true => fused::sparse_attention,
            false => composed::sparse_attention,
        };
        let out = attend(
            q.clone(),
            k.clone(),
            v.clone(),
            0.35,
            block,
            2,
            Some(&dropout),
        );
        let readout = DataRng::new(3).tensor(out.dims(), 1.0, &ad);
        let grads = (out.clone() * readout).sum().backward();
        let grad =
            |t: &Tensor<4>| Tensor::<4>::from_data(t.grad(&grads).unwrap().into_data(), &device());
        [
            Tensor::<4>::from_data(out.into_data(), &device()),
            grad(&q),
            grad(&k),
            grad(&v),
        ]
    };
    // Several blocks (two dropout calls), and one block (one call).
    for block in [5, 19] {
        let (fused_run, composed_run) = (run(true, block), run(false, block));
        for (what, (f, c)) in ["output", "dq", "dk", "dv"]
            .iter()
            .zip(fused_run.into_iter().zip(composed_run))
        {
            assert_close(
                f,
                c,
                &format!("sparse attention, block {block}, dropout: {what}"),
            );
        }
    }
    // And dropout did act.
    let plain = fused::sparse_attention(q.clone(), k.clone(), v.clone(), 0.35, 5, 2, None);
    let ad = device().autodiff();
    fused::seed_dropout(99);
    let lift = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad);
    let dropped = fused::sparse_attention(lift(&q), lift(&k), lift(&v), 0.35, 5, 2, Some(&dropout));
    let dropped = Tensor::<4>::from_data(dropped.into_data(), &device());
    assert!(max_abs_diff(plain, dropped) > 1e-2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn linear_agrees_on_random_shapes(
        rows in 1usize..400, d_in in 1usize..70, d_out in 1usize..70, seed: u64,
    ) {
        linear_case(rows, d_in, d_out, seed);
    }

    #[test]
    fn sparse_attention_agrees_on_random_shapes(
        batch in 1usize..3, heads in 1usize..4, l in 1usize..40, d in 1usize..20,
        block in 1usize..12, summaries in 1usize..4, seed: u64,
    ) {
        // The pattern needs c ≤ B (SparseParams checks it).
        sparse_case(batch, heads, l, d, block, summaries.min(block), seed);
    }

    #[test]
    fn causal_attention_agrees_on_random_shapes(
        batch in 1usize..3, heads in 1usize..4, l in 1usize..30, d in 1usize..20, seed: u64,
    ) {
        attention_case(batch, heads, l, d, seed);
    }
}
