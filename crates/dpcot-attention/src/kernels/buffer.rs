//! A growable, preallocated key/value buffer for decoding caches.

use burn::tensor::{s, Device, Slice, Tensor};

/// Keys and values of past tokens, stored transposed as `[batch, heads, d_head, capacity]`.
///
/// Rows are written with `slice_assign`, which backends such as flex perform in place when the
/// buffer is uniquely owned, so appending costs `O(d_head)` instead of the `O(t·d_head)` of
/// re-concatenating the whole history (measured on flex at t = 4096: ~1.5 µs per write vs
/// ~150 µs for `cat`). Reads are slices (views on flex). When a write lands past the capacity
/// the buffer doubles, so the amortised cost of growth is `O(d_head)` too.
///
/// The transposed layout makes both products of a decoding step matrix-times-column
/// (`qᵀ·Kᵀ` and `Vᵀ·p`) over a strided view, which flex runs 3–4× faster at t ≥ 1024 than the
/// row-major `q·Kᵀ` / `p·V` with a single-row left operand.
#[derive(Debug, Clone)]
pub(crate) struct KvBuffer {
    /// `[batch, heads, d_head, capacity]`
    kt: Tensor<4>,
    /// `[batch, heads, d_head, capacity]`
    vt: Tensor<4>,
}

impl KvBuffer {
    pub(crate) fn new(
        batch: usize,
        heads: usize,
        capacity: usize,
        d_head: usize,
        device: &Device,
    ) -> Self {
        let shape = [batch, heads, d_head, capacity.max(1)];
        Self {
            kt: Tensor::zeros(shape, device),
            vt: Tensor::zeros(shape, device),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.kt.dims()[3]
    }

    /// `[batch, heads, d_head]` this buffer was built for.
    pub(crate) fn row_shape(&self) -> [usize; 3] {
        let [b, h, d, _] = self.kt.dims();
        [b, h, d]
    }

    /// Writes `k, v: [batch, heads, 1, d_head]` at row `index`, growing if needed.
    pub(crate) fn write(&mut self, index: usize, k: Tensor<4>, v: Tensor<4>) {
        if index >= self.capacity() {
            self.grow(index + 1);
        }
        let column = index..index + 1;
        self.kt
            .inplace(|buf| buf.slice_assign(s![.., .., .., column.clone()], k.swap_dims(2, 3)));
        self.vt
            .inplace(|buf| buf.slice_assign(s![.., .., .., column], v.swap_dims(2, 3)));
    }

    /// Transposed keys and values of rows `start, start + step, …` below `end`, each
    /// `[batch, heads, d_head, n]`.
    pub(crate) fn read(&self, start: usize, end: usize, step: usize) -> (Tensor<4>, Tensor<4>) {
        let rows = Slice::new(start as isize, Some(end as isize), step as isize);
        let full = Slice::full();
        let slices = [full, full, full, rows];
        (self.kt.clone().slice(slices), self.vt.clone().slice(slices))
    }

    fn grow(&mut self, min_capacity: usize) {
        let old = self.capacity();
        let new = min_capacity.max(2 * old);
        let [b, h, d, _] = self.kt.dims();
        let device = self.kt.device();
        let extend = |buf: &mut Tensor<4>| {
            buf.inplace(|t| Tensor::cat(vec![t, Tensor::zeros([b, h, d, new - old], &device)], 3))
        };
        extend(&mut self.kt);
        extend(&mut self.vt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn row(value: f32, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(vec![value; 2 * 3], [1, 2, 1, 3]), device)
    }

    #[test]
    fn writes_past_capacity_grow_and_keep_earlier_rows() {
        let device = Device::default();
        let mut buffer = KvBuffer::new(1, 2, 1, 3, &device);
        for i in 0..5 {
            buffer.write(i, row(i as f32, &device), row(-(i as f32), &device));
        }
        assert!(buffer.capacity() >= 5);
        let (kt, vt) = buffer.read(0, 5, 1);
        assert_eq!(kt.dims(), [1, 2, 3, 5]);
        let keys = kt.try_into_vec_as::<f32>().ok();
        let first_row: Vec<f32> = (0..5).map(|i| i as f32).collect();
        assert_eq!(keys.as_deref().map(|k| &k[..5]), Some(&first_row[..]));
        let values = vt.try_into_vec_as::<f32>().ok();
        assert_eq!(values.as_deref().map(|v| v[4]), Some(-4.0));
    }

    #[test]
    fn stepped_reads_pick_one_residue_class() {
        let device = Device::default();
        let mut buffer = KvBuffer::new(1, 2, 8, 3, &device);
        for i in 0..8 {
            buffer.write(i, row(i as f32, &device), row(0.0, &device));
        }
        let (kt, _) = buffer.read(1, 8, 3);
        let keys = kt.try_into_vec_as::<f32>().ok();
        assert_eq!(keys.as_deref().map(|k| &k[..3]), Some(&[1.0, 4.0, 7.0][..]));
    }
}
