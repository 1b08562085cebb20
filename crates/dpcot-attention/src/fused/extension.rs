//! The fused operations as a burn backend extension: our kernels on burn-flex, and an autodiff
//! implementation over burn-flex whose backward passes are fused kernels too.
//!
//! burn routes a call of [`FusedOps`] on its `Dispatch` backend to the implementation of the
//! tensor's backend: [`Flex`] for plain flex tensors, `Autodiff<Flex>` for tracked ones. The
//! autodiff implementation runs the forward kernel, keeps what the backward kernel needs as the
//! operation's state (no recomputation: the state is at most what the composed form keeps),
//! and registers one backward step per operation.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{Int, Shape, Tensor, TensorData};

use super::attention;
use super::cpu;
use super::dropout::{apply_mask, Mask};
use super::linear as linear_kernel;
use super::scan;
use super::sparse;

/// Backend operations with a fused kernel on burn-flex (see the [module](super) docs).
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// [`super::softmax`].
    fn fused_softmax(x: FloatTensor<Self>, scale: f32, causal: bool) -> FloatTensor<Self>;
    /// [`super::gelu_tanh`].
    fn fused_gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// [`super::layer_norm`].
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self>;
    /// [`super::cross_entropy_sum`].
    fn fused_cross_entropy_sum(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// [`super::dropout`] with the mask of `key`.
    fn fused_dropout(x: FloatTensor<Self>, prob: f64, key: u64) -> FloatTensor<Self>;
    /// [`super::elu_plus_one`].
    fn fused_elu_plus_one(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// [`super::causal_attention`], dropping probabilities with `prob` and the mask of `key`.
    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        prob: f64,
        key: u64,
    ) -> FloatTensor<Self>;
    /// [`super::linear`] with a bias.
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// [`super::sparse_attention`] with blocks of `block` positions (at most the length) and
    /// `summaries` summary keys per block, dropping the local and the summary probabilities with
    /// `prob` and the masks of `keys`.
    #[allow(clippy::too_many_arguments)]
    fn fused_sparse_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        block: usize,
        summaries: usize,
        prob: f64,
        keys: [u64; 2],
    ) -> FloatTensor<Self>;
    /// [`super::selective_scan`].
    fn fused_selective_scan(
        u: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

pub(super) fn selective_scan(
    u: Tensor<3>,
    delta: Tensor<3>,
    a: Tensor<2>,
    b: Tensor<3>,
    c: Tensor<3>,
) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_selective_scan(
        u.into_dispatch(),
        delta.into_dispatch(),
        a.into_dispatch(),
        b.into_dispatch(),
        c.into_dispatch(),
    ))
}

pub(super) fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_linear(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn sparse_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
    block: usize,
    summaries: usize,
    prob: f64,
    keys: [u64; 2],
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_sparse_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
        block,
        summaries,
        prob,
        keys,
    ))
}

pub(super) fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
    prob: f64,
    key: u64,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
        prob,
        key,
    ))
}

pub(super) fn elu_plus_one<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_elu_plus_one(
        x.into_dispatch(),
    ))
}

pub(super) fn dropout<const D: usize>(x: Tensor<D>, prob: f64, key: u64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_dropout(
        x.into_dispatch(),
        prob,
        key,
    ))
}

pub(super) fn softmax<const D: usize>(x: Tensor<D>, scale: f32, causal: bool) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_softmax(
        x.into_dispatch(),
        scale,
        causal,
    ))
}

pub(super) fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_gelu_tanh(x.into_dispatch()))
}

pub(super) fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f32,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        eps,
    ))
}

pub(super) fn cross_entropy_sum(
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
    weights: Tensor<1>,
) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_cross_entropy_sum(
        logits.into_dispatch(),
        targets.into_dispatch(),
        weights.into_dispatch(),
    ))
}

// ---------------------------------------------------------------------------------------------
// burn-flex: the kernels on flex tensors.

impl FusedOps for Flex {
    fn fused_softmax(x: FlexTensor, scale: f32, causal: bool) -> FlexTensor {
        softmax_forward(x, scale, causal)
    }

    fn fused_gelu_tanh(x: FlexTensor) -> FlexTensor {
        let x = contiguous(x);
        map(&x, cpu::gelu_tanh_forward)
    }

    fn fused_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        eps: f32,
    ) -> FlexTensor {
        layer_norm_forward(&contiguous(x), &contiguous(gamma), &contiguous(beta), eps).output
    }

    fn fused_cross_entropy_sum(
        logits: FlexTensor,
        targets: FlexTensor,
        weights: FlexTensor,
    ) -> FlexTensor {
        cross_entropy_forward(&contiguous(logits), &targets, &contiguous(weights)).loss
    }

    fn fused_dropout(x: FlexTensor, prob: f64, key: u64) -> FlexTensor {
        map(&contiguous(x), |x, y| apply_mask(x, y, key, prob))
    }

    fn fused_elu_plus_one(x: FlexTensor) -> FlexTensor {
        map(&contiguous(x), cpu::elu_plus_one_forward)
    }

    fn fused_causal_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        scale: f32,
        prob: f64,
        key: u64,
    ) -> FlexTensor {
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        attention_forward(&q, &k, &v, scale, mask(prob, key)).output
    }

    fn fused_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        linear_forward(&contiguous(x), &contiguous(weight), &contiguous(bias))
    }

    fn fused_sparse_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        scale: f32,
        block: usize,
        summaries: usize,
        prob: f64,
        keys: [u64; 2],
    ) -> FlexTensor {
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let shape = sparse_shape(&q, &v, block, summaries);
        sparse_forward(&q, &k, &v, shape, scale, masks(prob, keys)).output
    }

    fn fused_selective_scan(
        u: FlexTensor,
        delta: FlexTensor,
        a: FlexTensor,
        b: FlexTensor,
        c: FlexTensor,
    ) -> FlexTensor {
        scan_forward(&[u, delta, a, b, c].map(contiguous))
    }
}

/// The scan's shape from its inputs `[u, Δ, A, B, C]`.
fn scan_shape([u, _, a, _, _]: &[FlexTensor; 5]) -> scan::Shape {
    let [batch, len, channels] = u.shape().dims::<3>();
    scan::Shape {
        batch,
        len,
        channels,
        state: a.shape().dims::<2>()[1],
    }
}

fn scan_inputs(inputs: &[FlexTensor; 5]) -> scan::Inputs<'_> {
    let [u, delta, a, b, c] = inputs;
    scan::Inputs {
        u: values(u),
        delta: values(delta),
        a: values(a),
        b: values(b),
        c: values(c),
    }
}

fn scan_forward(inputs: &[FlexTensor; 5]) -> FlexTensor {
    let shape = scan_shape(inputs);
    let mut y = vec![0.0; shape.batch * shape.len * shape.channels];
    scan::forward(scan_inputs(inputs), shape, &mut y);
    tensor(y, Shape::new([shape.batch, shape.len, shape.channels]))
}

/// The dropout mask of `key`, if anything is dropped.
fn mask(prob: f64, key: u64) -> Option<Mask> {
    (prob > 0.0).then(|| Mask::new(key, prob))
}

/// The sparse attention masks of `keys` (local, summary), if anything is dropped.
fn masks(prob: f64, [local, summary]: [u64; 2]) -> Option<sparse::Masks> {
    (prob > 0.0).then(|| sparse::Masks {
        local: Mask::new(local, prob),
        summary: Mask::new(summary, prob),
    })
}

/// The per-head shape of `q: [batch, heads, len, d]` and `v: [.., dv]`.
fn attention_shape(q: &FlexTensor, v: &FlexTensor) -> attention::Shape {
    let [b, h, len, d] = q.shape().dims::<4>();
    attention::Shape {
        heads: b * h,
        len,
        d,
        dv: v.shape().dims::<4>()[3],
    }
}

struct AttentionForward {
    output: FlexTensor,
    probabilities: FlexTensor,
}

fn attention_forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    scale: f32,
    mask: Option<Mask>,
) -> AttentionForward {
    let shape = attention_shape(q, v);
    let attention::Shape { heads, len, dv, .. } = shape;
    let mut probabilities = vec![0.0; heads * len * len];
    let mut output = vec![0.0; heads * len * dv];
    attention::forward(
        values(q),
        values(k),
        values(v),
        shape,
        scale,
        mask,
        &mut probabilities,
        &mut output,
    );
    let [b, h, ..] = q.shape().dims::<4>();
    AttentionForward {
        output: tensor(output, Shape::new([b, h, len, dv])),
        probabilities: tensor(probabilities, Shape::new([b, h, len, len])),
    }
}

/// `x·weight + bias` for `x: [rows, d_in]`, `weight: [d_in, d_out]`, `bias: [d_out]`.
fn linear_forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let [rows, d_in] = x.shape().dims::<2>();
    let d_out = weight.shape().dims::<2>()[1];
    let mut y = vec![0.0; rows * d_out];
    linear_kernel::forward(values(x), values(weight), values(bias), d_in, d_out, &mut y);
    tensor(y, Shape::new([rows, d_out]))
}

/// The per-head sparse shape of `q: [batch, heads, len, d]` and `v: [.., dv]`.
fn sparse_shape(q: &FlexTensor, v: &FlexTensor, block: usize, summaries: usize) -> sparse::Shape {
    let attention::Shape { heads, len, d, dv } = attention_shape(q, v);
    sparse::Shape {
        heads,
        len,
        d,
        dv,
        block,
        summaries,
    }
}

fn sparse_forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    shape: sparse::Shape,
    scale: f32,
    masks: Option<sparse::Masks>,
) -> AttentionForward {
    let sparse::Shape { heads, len, dv, .. } = shape;
    let width = shape.width();
    let mut probabilities = vec![0.0; heads * len * width];
    let mut output = vec![0.0; heads * len * dv];
    sparse::forward(
        values(q),
        values(k),
        values(v),
        shape,
        scale,
        masks,
        &mut probabilities,
        &mut output,
    );
    let [b, h, ..] = q.shape().dims::<4>();
    AttentionForward {
        output: tensor(output, Shape::new([b, h, len, dv])),
        probabilities: tensor(probabilities, Shape::new([b, h, len, width])),
    }
}

/// `t` itself if its values are one contiguous `f32` run, else a contiguous copy.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The values of a tensor made [`contiguous`].
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("fused kernels take contiguous f32 tensors")
}

fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A new tensor of `x`'s shape, written by `kernel(x, out)`.
fn map(x: &FlexTensor, kernel: impl FnOnce(&[f32], &mut [f32])) -> FlexTensor {
    let shape = x.shape();
    let mut out = vec![0.0; shape.num_elements()];
    kernel(values(x), &mut out);
    tensor(out, shape)
}

/// The length of the last dimension.
fn last_dim(x: &FlexTensor) -> usize {
    x.shape().as_slice().last().copied().unwrap_or(1)
}

fn softmax_forward(x: FlexTensor, scale: f32, causal: bool) -> FlexTensor {
    let x = contiguous(x);
    let cols = last_dim(&x);
    map(&x, |x, y| cpu::softmax_forward(x, y, cols, scale, causal))
}

struct LayerNormForward {
    output: FlexTensor,
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

fn layer_norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    eps: f32,
) -> LayerNormForward {
    let cols = last_dim(x);
    let rows = x.shape().num_elements() / cols.max(1);
    let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
    let output = map(x, |x, y| {
        cpu::layer_norm_forward(
            x,
            values(gamma),
            values(beta),
            cols,
            eps,
            y,
            &mut mean,
            &mut rstd,
        )
    });
    LayerNormForward { output, mean, rstd }
}

struct CrossEntropyForward {
    loss: FlexTensor,
    probabilities: FlexTensor,
    targets: Vec<u32>,
}

fn cross_entropy_forward(
    logits: &FlexTensor,
    targets: &FlexTensor,
    weights: &FlexTensor,
) -> CrossEntropyForward {
    let cols = last_dim(logits);
    let targets: Vec<u32> = targets
        .clone()
        .into_data()
        .iter::<i64>()
        .map(|t| t as u32)
        .collect();
    let mut sum = 0.0;
    let probabilities = map(logits, |z, p| {
        sum = cpu::cross_entropy_forward(z, &targets, values(weights), cols, p);
    });
    CrossEntropyForward {
        loss: tensor(vec![sum as f32], Shape::new([1])),
        probabilities,
        targets,
    }
}

// ---------------------------------------------------------------------------------------------
// Autodiff over burn-flex: the forward kernels plus a fused backward step each.

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn fused_softmax(x: FloatTensor<Self>, scale: f32, causal: bool) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SoftmaxBackward;

        impl Backward<Flex, 1> for SoftmaxBackward {
            /// The probabilities, the scale and whether the softmax was causal.
            type State = (FlexTensor, f32, bool);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (y, scale, causal) = ops.state;
                unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                    let grad = contiguous(grad);
                    let cols = last_dim(&y);
                    map(&y, |y, grad_x| {
                        cpu::softmax_backward(y, values(&grad), grad_x, cols, scale, causal)
                    })
                });
            }
        }

        let (input, guard) = x.into_parts();
        match SoftmaxBackward
            .prepare::<C>([guard])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = softmax_forward(input, scale, causal);
                prep.finish((y.clone(), scale, causal), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(softmax_forward(input, scale, causal)),
        }
    }

    fn fused_gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        elementwise::<C>(
            x,
            cpu::gelu_tanh_forward,
            cpu::gelu_tanh_backward,
            Reads::Input,
        )
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNormBackward;

        /// What the backward pass of LayerNorm reads.
        #[derive(Debug, Clone)]
        struct Saved {
            x: FlexTensor,
            gamma: FlexTensor,
            mean: Vec<f32>,
            rstd: Vec<f32>,
        }

        impl Backward<Flex, 3> for LayerNormBackward {
            type State = Saved;

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let Saved {
                    x,
                    gamma,
                    mean,
                    rstd,
                } = ops.state;
                let grad = contiguous(grads.consume::<Flex>(&ops.node));
                let cols = last_dim(&x);
                let (mut grad_gamma, mut grad_beta) = (vec![0.0; cols], vec![0.0; cols]);
                let grad_x = map(&x, |x, grad_x| {
                    cpu::layer_norm_backward(
                        x,
                        values(&gamma),
                        &mean,
                        &rstd,
                        values(&grad),
                        cols,
                        grad_x,
                        &mut grad_gamma,
                        &mut grad_beta,
                    )
                });
                let shape = Shape::new([cols]);
                let grad_gamma = tensor(grad_gamma, shape.clone());
                let parents = ops.parents.map(|parent| parent.map(|parent| parent.id));
                register(
                    grads,
                    parents,
                    [grad_x, grad_gamma, tensor(grad_beta, shape)],
                );
            }
        }

        let (x, guard_x) = x.into_parts();
        let (gamma, guard_gamma) = gamma.into_parts();
        let (beta, guard_beta) = beta.into_parts();
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let LayerNormForward { output, mean, rstd } = layer_norm_forward(&x, &gamma, &beta, eps);
        match LayerNormBackward
            .prepare::<C>([guard_x, guard_gamma, guard_beta])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                Saved {
                    x,
                    gamma,
                    mean,
                    rstd,
                },
                output,
            ),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_cross_entropy_sum(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CrossEntropyBackward;

        /// What the backward pass of the cross-entropy reads.
        #[derive(Debug, Clone)]
        struct Saved {
            probabilities: FlexTensor,
            targets: Vec<u32>,
            weights: FlexTensor,
        }

        impl Backward<Flex, 1> for CrossEntropyBackward {
            type State = Saved;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let Saved {
                    probabilities,
                    targets,
                    weights,
                } = ops.state;
                unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                    let scale = values(&contiguous(grad))[0];
                    let cols = last_dim(&probabilities);
                    map(&probabilities, |p, grad_logits| {
                        cpu::cross_entropy_backward(
                            p,
                            &targets,
                            values(&weights),
                            cols,
                            scale,
                            grad_logits,
                        )
                    })
                });
            }
        }

        let (logits, guard) = logits.into_parts();
        // The weights are constants: their graph, if any, is not followed.
        let weights = contiguous(weights.into_primitive());
        let forward = cross_entropy_forward(&contiguous(logits), &targets, &weights);
        match CrossEntropyBackward
            .prepare::<C>([guard])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                Saved {
                    probabilities: forward.probabilities,
                    targets: forward.targets,
                    weights,
                },
                forward.loss,
            ),
            OpsKind::UnTracked(prep) => prep.finish(forward.loss),
        }
    }

    fn fused_dropout(x: FloatTensor<Self>, prob: f64, key: u64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct DropoutBackward;

        impl Backward<Flex, 1> for DropoutBackward {
            /// The mask's key and the drop probability: the mask is regenerated, not stored.
            type State = (u64, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (key, prob) = ops.state;
                unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                    map(&contiguous(grad), |g, grad_x| {
                        apply_mask(g, grad_x, key, prob)
                    })
                });
            }
        }

        let (input, guard) = x.into_parts();
        let output = map(&contiguous(input), |x, y| apply_mask(x, y, key, prob));
        match DropoutBackward
            .prepare::<C>([guard])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((key, prob), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_elu_plus_one(x: FloatTensor<Self>) -> FloatTensor<Self> {
        elementwise::<C>(
            x,
            cpu::elu_plus_one_forward,
            cpu::elu_plus_one_backward,
            Reads::Output,
        )
    }

    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        prob: f64,
        key: u64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        /// What the backward pass of attention reads.
        #[derive(Debug, Clone)]
        struct Saved {
            q: FlexTensor,
            k: FlexTensor,
            v: FlexTensor,
            probabilities: FlexTensor,
            scale: f32,
            mask: Option<Mask>,
        }

        impl Backward<Flex, 3> for AttentionBackward {
            type State = Saved;

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let Saved {
                    q,
                    k,
                    v,
                    probabilities,
                    scale,
                    mask,
                } = ops.state;
                let grad = contiguous(grads.consume::<Flex>(&ops.node));
                let shape = attention_shape(&q, &v);
                let parents = ops.parents.map(|parent| parent.map(|parent| parent.id));
                register_qkv(grads, parents, [&q, &k, &v], |grad_q, grad_k, grad_v| {
                    attention::backward(
                        values(&q),
                        values(&k),
                        values(&v),
                        values(&probabilities),
                        values(&grad),
                        shape,
                        scale,
                        mask,
                        grad_q,
                        grad_k,
                        grad_v,
                    )
                });
            }
        }

        let (q, guard_q) = q.into_parts();
        let (k, guard_k) = k.into_parts();
        let (v, guard_v) = v.into_parts();
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let mask = mask(prob, key);
        let forward = attention_forward(&q, &k, &v, scale, mask);
        match AttentionBackward
            .prepare::<C>([guard_q, guard_k, guard_v])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                Saved {
                    q,
                    k,
                    v,
                    probabilities: forward.probabilities,
                    scale,
                    mask,
                },
                forward.output,
            ),
            OpsKind::UnTracked(prep) => prep.finish(forward.output),
        }
    }

    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LinearBackward;

        impl Backward<Flex, 3> for LinearBackward {
            /// The input and the weight.
            type State = (FlexTensor, FlexTensor);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (x, weight) = ops.state;
                let grad = contiguous(grads.consume::<Flex>(&ops.node));
                let [rows, d_in] = x.shape().dims::<2>();
                let d_out = weight.shape().dims::<2>()[1];
                let [x_parent, weight_parent, bias_parent] =
                    ops.parents.map(|parent| parent.map(|parent| parent.id));
                if let Some(parent) = x_parent {
                    let mut dx = vec![0.0; rows * d_in];
                    linear_kernel::backward_x(values(&grad), values(&weight), d_in, d_out, &mut dx);
                    grads.register::<Flex>(parent, tensor(dx, Shape::new([rows, d_in])));
                }
                if weight_parent.is_some() || bias_parent.is_some() {
                    let (mut dw, mut db) = (vec![0.0; d_in * d_out], vec![0.0; d_out]);
                    linear_kernel::backward_weights(
                        values(&x),
                        values(&grad),
                        d_in,
                        d_out,
                        &mut dw,
                        &mut db,
                    );
                    if let Some(parent) = weight_parent {
                        grads.register::<Flex>(parent, tensor(dw, Shape::new([d_in, d_out])));
                    }
                    if let Some(parent) = bias_parent {
                        grads.register::<Flex>(parent, tensor(db, Shape::new([d_out])));
                    }
                }
            }
        }

        let (x, guard_x) = x.into_parts();
        let (weight, guard_weight) = weight.into_parts();
        let (bias, guard_bias) = bias.into_parts();
        let (x, weight) = (contiguous(x), contiguous(weight));
        let output = linear_forward(&x, &weight, &contiguous(bias));
        match LinearBackward
            .prepare::<C>([guard_x, guard_weight, guard_bias])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x, weight), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_sparse_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        block: usize,
        summaries: usize,
        prob: f64,
        keys: [u64; 2],
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SparseBackward;

        /// What the backward pass of sparse attention reads.
        #[derive(Debug, Clone)]
        struct Saved {
            q: FlexTensor,
            k: FlexTensor,
            v: FlexTensor,
            probabilities: FlexTensor,
            shape: sparse::Shape,
            scale: f32,
            masks: Option<sparse::Masks>,
        }

        impl Backward<Flex, 3> for SparseBackward {
            type State = Saved;

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let Saved {
                    q,
                    k,
                    v,
                    probabilities,
                    shape,
                    scale,
                    masks,
                } = ops.state;
                let grad = contiguous(grads.consume::<Flex>(&ops.node));
                let parents = ops.parents.map(|parent| parent.map(|parent| parent.id));
                register_qkv(grads, parents, [&q, &k, &v], |grad_q, grad_k, grad_v| {
                    sparse::backward(
                        values(&q),
                        values(&k),
                        values(&v),
                        values(&probabilities),
                        values(&grad),
                        shape,
                        scale,
                        masks,
                        grad_q,
                        grad_k,
                        grad_v,
                    )
                });
            }
        }

        let (q, guard_q) = q.into_parts();
        let (k, guard_k) = k.into_parts();
        let (v, guard_v) = v.into_parts();
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let shape = sparse_shape(&q, &v, block, summaries);
        let masks = masks(prob, keys);
        let forward = sparse_forward(&q, &k, &v, shape, scale, masks);
        match SparseBackward
            .prepare::<C>([guard_q, guard_k, guard_v])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                Saved {
                    q,
                    k,
                    v,
                    probabilities: forward.probabilities,
                    shape,
                    scale,
                    masks,
                },
                forward.output,
            ),
            OpsKind::UnTracked(prep) => prep.finish(forward.output),
        }
    }

    fn fused_selective_scan(
        u: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ScanBackward;

        impl Backward<Flex, 5> for ScanBackward {
            /// The five inputs: the backward pass recomputes the states from them.
            type State = [FlexTensor; 5];

            fn backward(
                self,
                ops: Ops<Self::State, 5>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let inputs = ops.state;
                let grad = contiguous(grads.consume::<Flex>(&ops.node));
                let computed =
                    scan::backward(scan_inputs(&inputs), values(&grad), scan_shape(&inputs));
                let [u, delta, a, b, c] = &inputs;
                let parents = ops.parents.map(|parent| parent.map(|parent| parent.id));
                let computed = [
                    tensor(computed.u, u.shape()),
                    tensor(computed.delta, delta.shape()),
                    tensor(computed.a, a.shape()),
                    tensor(computed.b, b.shape()),
                    tensor(computed.c, c.shape()),
                ];
                register(grads, parents, computed);
            }
        }

        let (u, guard_u) = u.into_parts();
        let (delta, guard_delta) = delta.into_parts();
        let (a, guard_a) = a.into_parts();
        let (b, guard_b) = b.into_parts();
        let (c, guard_c) = c.into_parts();
        let inputs = [u, delta, a, b, c].map(contiguous);
        let output = scan_forward(&inputs);
        match ScanBackward
            .prepare::<C>([guard_u, guard_delta, guard_a, guard_b, guard_c])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(inputs, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

/// Registers each gradient of `computed` for its parent, if that parent is tracked.
fn register<const N: usize>(
    grads: &mut Gradients,
    parents: [Option<NodeId>; N],
    computed: [FlexTensor; N],
) {
    for (parent, grad) in parents.into_iter().zip(computed) {
        if let Some(parent) = parent {
            grads.register::<Flex>(parent, grad);
        }
    }
}

/// Registers the gradients of an attention's `q`, `k` and `v` for their tracked parents, written
/// by `kernel(grad_q, grad_k, grad_v)` into zeroed buffers of their sizes.
fn register_qkv(
    grads: &mut Gradients,
    parents: [Option<NodeId>; 3],
    [q, k, v]: [&FlexTensor; 3],
    kernel: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]),
) {
    let zeros = |t: &FlexTensor| vec![0.0; values(t).len()];
    let (mut grad_q, mut grad_k, mut grad_v) = (zeros(q), zeros(k), zeros(v));
    kernel(&mut grad_q, &mut grad_k, &mut grad_v);
    let shaped = |grad, like: &FlexTensor| tensor(grad, like.shape());
    let computed = [shaped(grad_q, q), shaped(grad_k, k), shaped(grad_v, v)];
    register(grads, parents, computed);
}

/// Which tensor an element-wise operation's backward kernel reads.
enum Reads {
    Input,
    Output,
}

/// An element-wise operation `y = forward(x)` under autodiff whose gradient is
/// `backward(saved, grad_y, grad_x)`, with `saved` the input or the output.
fn elementwise<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    forward: fn(&[f32], &mut [f32]),
    backward: fn(&[f32], &[f32], &mut [f32]),
    reads: Reads,
) -> FloatTensor<Autodiff<Flex, C>> {
    /// The backward kernel; the state is the saved tensor.
    #[derive(Debug)]
    struct ElementwiseBackward(fn(&[f32], &[f32], &mut [f32]));

    impl Backward<Flex, 1> for ElementwiseBackward {
        type State = FlexTensor;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let saved = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                let grad = contiguous(grad);
                map(&saved, |saved, grad_x| {
                    (self.0)(saved, values(&grad), grad_x)
                })
            });
        }
    }

    let (input, guard) = x.into_parts();
    let input = contiguous(input);
    let output = map(&input, forward);
    match ElementwiseBackward(backward)
        .prepare::<C>([guard])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = match reads {
                Reads::Input => input,
                Reads::Output => output.clone(),
            };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}
