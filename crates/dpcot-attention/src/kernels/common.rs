//! Small helpers shared by the kernels: padding, host-built masks, softmax pieces.

use burn::nn::Dropout;
use burn::tensor::{Bool, Device, Tensor, TensorData};

/// Score given to masked-out positions.
///
/// Finite rather than `-inf` so that a row whose scores in one part of a log-sum-exp merge are
/// all masked still has a finite maximum and never produces `inf - inf = NaN`; `exp` of it
/// underflows to exactly 0 in f32.
pub(crate) const MASKED: f32 = -1.0e9;

/// Softmax temperature `1/√d_head`.
pub(crate) fn scale(d_head: usize) -> f32 {
    1.0 / (d_head as f32).sqrt()
}

/// Smallest multiple of `block` that is `>= len` (and at least one block).
pub(crate) fn padded_len(len: usize, block: usize) -> usize {
    len.div_ceil(block).max(1) * block
}

/// Zero-pads `x: [batch, heads, seq, d]` along `seq` to `len`.
pub(crate) fn pad_seq(x: Tensor<4>, len: usize) -> Tensor<4> {
    let [b, h, l, d] = x.dims();
    if l == len {
        return x;
    }
    let zeros = Tensor::zeros([b, h, len - l, d], &x.device());
    Tensor::cat(vec![x, zeros], 2)
}

/// `[1, 1, rows, cols]` boolean mask, `true` where `blocked(row, col)`.
pub(crate) fn mask_2d(
    rows: usize,
    cols: usize,
    device: &Device,
    blocked: impl Fn(usize, usize) -> bool,
) -> Tensor<4, Bool> {
    let data: Vec<bool> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .map(|(r, c)| blocked(r, c))
        .collect();
    Tensor::from_data(TensorData::new(data, [1, 1, rows, cols]), device)
}

/// `[1, 1, n, rows, cols]` boolean mask, `true` where `blocked(block, row, col)`.
pub(crate) fn mask_3d(
    n: usize,
    rows: usize,
    cols: usize,
    device: &Device,
    blocked: impl Fn(usize, usize, usize) -> bool,
) -> Tensor<5, Bool> {
    let mut data = Vec::with_capacity(n * rows * cols);
    for b in 0..n {
        for r in 0..rows {
            for c in 0..cols {
                data.push(blocked(b, r, c));
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [1, 1, n, rows, cols]), device)
}

/// Attention probabilities (or their unnormalised numerators, which the kernels divide by an
/// undropped denominator) after dropout, if any.
pub(crate) fn drop_probabilities<const D: usize>(
    probabilities: Tensor<D>,
    dropout: Option<&Dropout>,
) -> Tensor<D> {
    match dropout {
        Some(dropout) => crate::fused::dropout(probabilities, dropout),
        None => probabilities,
    }
}

/// Softmax attention of one query row against an explicit key set (decoding).
///
/// - q: `[batch, heads, 1, d]`, already scaled
/// - kt, vt: transposed keys and values `[batch, heads, d, n]`
/// - returns `[batch, heads, 1, d]`
pub(crate) fn attend_all(q: Tensor<4>, kt: Tensor<4>, vt: Tensor<4>) -> Tensor<4> {
    let weights = burn::tensor::activation::softmax(q.matmul(kt), 3);
    vt.matmul(weights.swap_dims(2, 3)).swap_dims(2, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_len_rounds_up_to_whole_blocks() {
        assert_eq!(padded_len(1, 4), 4);
        assert_eq!(padded_len(8, 4), 8);
        assert_eq!(padded_len(9, 4), 12);
        assert_eq!(padded_len(0, 4), 4);
    }

    #[test]
    fn masks_are_row_major() {
        let device = Device::default();
        let mask = mask_3d(2, 2, 3, &device, |n, r, c| n == 1 && r == 0 && c == 2);
        let data = mask.into_data().try_to_vec::<bool>().ok();
        let mut want = vec![false; 12];
        want[6 + 2] = true;
        assert_eq!(data, Some(want));
    }
}
