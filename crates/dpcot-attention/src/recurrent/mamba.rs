//! A selective state-space layer in the style of Mamba (Gu and Dao 2023, "Mamba: Linear-Time
//! Sequence Modeling with Selective State Spaces"), the S6 block as the paper's reference
//! implementation and mamba-minimal write it:
//!
//! 1. `[x | z] = h W_in` (`d → 2·d_inner`, no bias);
//! 2. `x ← SiLU(conv(x))`, a causal depthwise convolution of width `K` (with bias);
//! 3. `[δ | B | C] = x W_x` (`d_inner → R + 2N`), `Δ = softplus(δ W_Δ + b_Δ)` (`R → d_inner`);
//! 4. per channel `c` and state `n`, with `A = −exp(A_log)`:
//!    `h_t[c, n] = exp(Δ_t[c] A[c, n]) h_{t−1}[c, n] + Δ_t[c] B_t[n] x_t[c]`,
//!    `y_t[c] = Σ_n C_t[n] h_t[c, n] + D[c] x_t[c]`;
//! 5. `out = (y ⊙ SiLU(z)) W_out` (`d_inner → d`, no bias).
//!
//! `R = ⌈d/16⌉`; `A_log` starts at `log(1..=N)` per channel (S4D-real), `D` at 1, and `b_Δ` so
//! that `Δ` starts log-uniform in `[0.001, 0.1]`, as in the paper. The layer has no heads. In
//! training the scan is one pass over the sequence ([`crate::fused::selective_scan`]; the
//! paper's hardware-aware scan on the CPU); in decoding the state is `h` and the last `K − 1`
//! convolution inputs.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{silu, softplus};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use super::check_step_input;
use crate::error::AttentionError;
use crate::fused;
use crate::layer::linear_rows;

/// Validated parameters of the Mamba-style layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MambaParams {
    d_state: usize,
    expand: usize,
    conv_width: usize,
}

impl MambaParams {
    /// Checks that `d_state`, `expand` and `conv_width` are at least 1.
    pub fn new(d_state: usize, expand: usize, conv_width: usize) -> Result<Self, AttentionError> {
        for (field, value) in [
            ("d_state", d_state),
            ("expand", expand),
            ("conv_width", conv_width),
        ] {
            if value == 0 {
                return Err(AttentionError::invalid(field, "must be at least 1, got 0"));
            }
        }
        Ok(Self {
            d_state,
            expand,
            conv_width,
        })
    }

    /// State size `N` per channel.
    pub fn d_state(&self) -> usize {
        self.d_state
    }

    /// `d_inner / d_model`.
    pub fn expand(&self) -> usize {
        self.expand
    }

    /// Convolution width `K`.
    pub fn conv_width(&self) -> usize {
        self.conv_width
    }

    /// `d_inner = expand · d_model`.
    pub fn d_inner(&self, d_model: usize) -> usize {
        self.expand * d_model
    }

    /// Rank `R = ⌈d_model / 16⌉` of `Δ`'s projection.
    pub fn dt_rank(&self, d_model: usize) -> usize {
        d_model.div_ceil(16)
    }
}

/// The Mamba-style layer (see the [module](self) docs).
#[derive(Module, Debug)]
pub struct Mamba {
    /// `d → 2·d_inner`, no bias.
    pub in_proj: Linear,
    /// Depthwise convolution weights, `[d_inner, K]`; tap `j` multiplies input `t − (K−1) + j`.
    pub conv_weight: Param<Tensor<2>>,
    /// Convolution bias, `[d_inner]`.
    pub conv_bias: Param<Tensor<1>>,
    /// `d_inner → R + 2N`, no bias.
    pub x_proj: Linear,
    /// `R → d_inner`, with bias.
    pub dt_proj: Linear,
    /// `log(−A)`, `[d_inner, N]`.
    pub a_log: Param<Tensor<2>>,
    /// Skip connection `D`, `[d_inner]`.
    pub d_skip: Param<Tensor<1>>,
    /// `d_inner → d`, no bias.
    pub out_proj: Linear,
    d_model: usize,
    #[module(skip)]
    params: MambaParams,
}

/// `Δ` at initialisation lies in `[DT_MIN, DT_MAX]`, log-uniform.
const DT_MIN: f64 = 1e-3;
const DT_MAX: f64 = 1e-1;

impl Mamba {
    pub(crate) fn new(d_model: usize, params: MambaParams, device: &Device) -> Self {
        let (di, n, k) = (params.d_inner(d_model), params.d_state, params.conv_width);
        let rank = params.dt_rank(d_model);
        let no_bias = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        // PyTorch's Conv1d default: uniform in ±1/√fan_in, fan_in = K for a depthwise kernel.
        let conv_bound = 1.0 / (k as f64).sqrt();
        let uniform = |bound: f64| Distribution::Uniform(-bound, bound);
        let dt_bound = 1.0 / (rank as f64).sqrt();
        let mut dt_proj = LinearConfig::new(rank, di)
            .with_initializer(Initializer::Uniform {
                min: -dt_bound,
                max: dt_bound,
            })
            .init(device);
        // b_Δ = softplus⁻¹(Δ₀) with Δ₀ log-uniform in [DT_MIN, DT_MAX].
        let dt0 = Tensor::<1>::random(
            [di],
            Distribution::Uniform(DT_MIN.ln(), DT_MAX.ln()),
            device,
        )
        .exp();
        let inverse_softplus = dt0.clone() + dt0.neg().exp().neg().add_scalar(1.0).log();
        dt_proj.bias = Some(Param::from_tensor(inverse_softplus));
        let a_log: Vec<f32> = (0..di)
            .flat_map(|_| (1..=n).map(|i| (i as f32).ln()))
            .collect();
        Self {
            in_proj: no_bias(d_model, 2 * di),
            conv_weight: Param::from_tensor(Tensor::random([di, k], uniform(conv_bound), device)),
            conv_bias: Param::from_tensor(Tensor::random([di], uniform(conv_bound), device)),
            x_proj: no_bias(di, rank + 2 * n),
            dt_proj,
            a_log: Param::from_tensor(Tensor::from_data(TensorData::new(a_log, [di, n]), device)),
            d_skip: Param::from_tensor(Tensor::ones([di], device)),
            out_proj: no_bias(di, d_model),
            d_model,
            params,
        }
    }

    /// The layer's parameters.
    pub fn params(&self) -> MambaParams {
        self.params
    }

    /// Model width.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    fn d_inner(&self) -> usize {
        self.params.d_inner(self.d_model)
    }

    /// `[x | z]` of step 1, each `[batch, seq, d_inner]`.
    fn split_input(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let di = self.d_inner();
        let xz = linear_rows(&self.in_proj, x);
        (xz.clone().slice_dim(2, 0..di), xz.slice_dim(2, di..2 * di))
    }

    /// Tap `j` of the convolution as `[1, 1, d_inner]`.
    fn tap(&self, j: usize) -> Tensor<3> {
        let di = self.d_inner();
        self.conv_weight
            .val()
            .slice_dim(1, j..j + 1)
            .reshape([1, 1, di])
    }

    /// `bias + Σ_j tap_j ⊙ window_j`: the convolution over `[batch, seq + K − 1, d_inner]`
    /// inputs (the first `K − 1` of them history), giving `[batch, seq, d_inner]`.
    fn convolve(&self, window: Tensor<3>, seq: usize) -> Tensor<3> {
        let di = self.d_inner();
        (0..self.params.conv_width).fold(self.conv_bias.val().reshape([1, 1, di]), |acc, j| {
            acc + window.clone().slice_dim(1, j..j + seq) * self.tap(j)
        })
    }

    /// Step 3 and 4 from the convolved `x`: `Δ [b, l, d_inner]`, `B, C [b, l, N]`.
    fn selection(&self, xc: Tensor<3>) -> [Tensor<3>; 3] {
        let (rank, n) = (self.params.dt_rank(self.d_model), self.params.d_state);
        let dbc = linear_rows(&self.x_proj, xc);
        let delta = softplus(
            linear_rows(&self.dt_proj, dbc.clone().slice_dim(2, 0..rank)),
            1.0,
        );
        [
            delta,
            dbc.clone().slice_dim(2, rank..rank + n),
            dbc.slice_dim(2, rank + n..rank + 2 * n),
        ]
    }

    /// `A = −exp(A_log)`, `[d_inner, N]`.
    fn a(&self) -> Tensor<2> {
        self.a_log.val().exp().neg()
    }

    /// Step 5 from the scan's output.
    fn finish(&self, y: Tensor<3>, xc: Tensor<3>, z: Tensor<3>) -> Tensor<3> {
        let di = self.d_inner();
        let y = y + xc * self.d_skip.val().reshape([1, 1, di]);
        linear_rows(&self.out_proj, y * silu(z))
    }

    /// Parallel (training) forward.
    ///
    /// - x: `[batch, seq, d_model]`
    /// - returns `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, _] = x.dims();
        let (xi, z) = self.split_input(x);
        let k = self.params.conv_width;
        let window = if k > 1 {
            let history = Tensor::zeros([b, k - 1, self.d_inner()], &xi.device());
            Tensor::cat(vec![history, xi], 1)
        } else {
            xi
        };
        let xc = silu(self.convolve(window, l));
        let [delta, bm, cm] = self.selection(xc.clone());
        let y = selective_scan(xc.clone(), delta, self.a(), bm, cm);
        self.finish(y, xc, z)
    }

    /// An empty decoding state.
    pub fn new_state(&self, batch: usize, device: &Device) -> MambaState {
        let (di, k) = (self.d_inner(), self.params.conv_width);
        MambaState {
            h: Tensor::zeros([batch, di, self.params.d_state], device),
            inputs: (k > 1).then(|| Tensor::zeros([batch, k - 1, di], device)),
            len: 0,
        }
    }

    /// Incremental forward of the next token.
    ///
    /// - x: `[batch, 1, d_model]`
    /// - returns `[batch, 1, d_model]`
    pub fn forward_step(
        &self,
        x: Tensor<3>,
        state: &mut MambaState,
    ) -> Result<Tensor<3>, AttentionError> {
        let [batch, di, n] = state.h.dims();
        check_step_input(&x, batch, self.d_model)?;
        let (xi, z) = self.split_input(x);
        let window = match &mut state.inputs {
            Some(inputs) => {
                let window = Tensor::cat(vec![inputs.clone(), xi], 1);
                let k = self.params.conv_width;
                *inputs = window.clone().slice_dim(1, 1..k);
                window
            }
            None => xi,
        };
        let xc = silu(self.convolve(window, 1));
        let [delta, bm, cm] = self.selection(xc.clone());
        let delta = delta.reshape([batch, di, 1]);
        let decay = (delta.clone() * self.a().unsqueeze_dim::<3>(0)).exp();
        let input = (delta * xc.clone().reshape([batch, di, 1])) * bm.reshape([batch, 1, n]);
        state.h.inplace(|h| h * decay + input);
        state.len += 1;
        let y = (state.h.clone() * cm.reshape([batch, 1, n]))
            .sum_dim(2)
            .reshape([batch, 1, di]);
        Ok(self.finish(y, xc, z))
    }
}

/// Mamba's decoding state.
#[derive(Debug, Clone)]
pub struct MambaState {
    /// `[batch, d_inner, N]`
    h: Tensor<3>,
    /// The last `K − 1` convolution inputs, `[batch, K − 1, d_inner]` (none for `K = 1`).
    inputs: Option<Tensor<3>>,
    len: usize,
}

impl MambaState {
    /// Tokens consumed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been consumed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The selective scan of step 4 without `D` ([`fused::selective_scan`]).
///
/// - u, delta: `[batch, seq, d_inner]`; a: `[d_inner, N]`; bm, cm: `[batch, seq, N]`
/// - returns `[batch, seq, d_inner]`
pub fn selective_scan(
    u: Tensor<3>,
    delta: Tensor<3>,
    a: Tensor<2>,
    bm: Tensor<3>,
    cm: Tensor<3>,
) -> Tensor<3> {
    fused::selective_scan(u, delta, a, bm, cm)
}

/// The scan of step 4 written out token by token (`h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t x_t`,
/// `y_t = C_t h_t`, no `D`), as mamba-minimal's `selective_scan`: the reference the fused scan
/// and the layer are tested against (and that `scripts/recurrent_reference.py` mirrors).
///
/// Same shapes as [`selective_scan`].
pub fn naive_scan(
    u: Tensor<3>,
    delta: Tensor<3>,
    a: Tensor<2>,
    bm: Tensor<3>,
    cm: Tensor<3>,
) -> Tensor<3> {
    let [b, l, di] = u.dims();
    let n = a.dims()[1];
    let mut h: Tensor<3> = Tensor::zeros([b, di, n], &u.device());
    let at = |x: &Tensor<3>, t: usize, shape: [usize; 3]| {
        x.clone().slice_dim(1, t..t + 1).reshape(shape)
    };
    let outputs = (0..l)
        .map(|t| {
            let d_t = at(&delta, t, [b, di, 1]);
            let decay = (d_t.clone() * a.clone().unsqueeze_dim::<3>(0)).exp();
            h = h.clone() * decay + (d_t * at(&u, t, [b, di, 1])) * at(&bm, t, [b, 1, n]);
            (h.clone() * at(&cm, t, [b, 1, n]))
                .sum_dim(2)
                .reshape([b, 1, di])
        })
        .collect();
    Tensor::cat(outputs, 1)
}
