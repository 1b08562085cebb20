//! Batches: sequences padded to the longest of the batch, next-token targets, and the loss
//! mask covering the supervised part (everything after the first separator that the task does
//! not give).

use burn::tensor::{Device, Int, Tensor, TensorData};
use dpcot_tasks::vocab::PAD;
use dpcot_tasks::{DpTask, Example};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One training or teacher-forced evaluation batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[batch, seq]`: every token but the last of each example.
    pub inputs: Tensor<2, Int>,
    /// `[batch, seq]`: the next token at every position (padding where there is none).
    pub targets: Tensor<2, Int>,
    /// `[batch, seq]`: 1 where the target is supervised, else 0.
    pub mask: Tensor<2>,
    /// Host copy of `targets`, row-major, for scoring without another device read.
    pub host_targets: Vec<u32>,
    /// Host copy of `mask`, row-major.
    pub host_mask: Vec<bool>,
    /// The padded sequence length: the longest example's length minus one.
    pub seq: usize,
    /// Supervised target tokens in the batch.
    pub supervised: usize,
}

impl Batch {
    /// The batch of `examples` of `task`, on `device`.
    pub fn new(examples: &[&Example], task: &dyn DpTask, device: &Device) -> Self {
        let rows = examples.len();
        let seq = examples
            .iter()
            .map(|e| e.tokens.len() - 1)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut inputs = vec![PAD as i64; rows * seq];
        let mut targets = vec![PAD; rows * seq];
        let mut mask = vec![false; rows * seq];
        for (r, example) in examples.iter().enumerate() {
            let tokens = &example.tokens;
            for t in 0..tokens.len() - 1 {
                inputs[r * seq + t] = tokens[t] as i64;
                targets[r * seq + t] = tokens[t + 1];
                // Position t predicts token t + 1, supervised once past the prompt unless the
                // task gives that token.
                mask[r * seq + t] = t + 1 >= example.prompt_len
                    && task
                        .given(example.prompt(), t + 1 - example.prompt_len)
                        .is_none();
            }
        }
        let supervised = mask.iter().filter(|&&m| m).count();
        let float_mask: Vec<f32> = mask.iter().map(|&m| m as u8 as f32).collect();
        let int_targets: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        Self {
            inputs: Tensor::from_data(TensorData::new(inputs, [rows, seq]), device),
            targets: Tensor::from_data(TensorData::new(int_targets, [rows, seq]), device),
            mask: Tensor::from_data(TensorData::new(float_mask, [rows, seq]), device),
            host_targets: targets,
            host_mask: mask,
            seq,
            supervised,
        }
    }
}

/// Which examples make up the batch of every step: each epoch is a fresh permutation drawn
/// from the seed and the epoch number, so the batch of step s is a function of (seed, s) alone
/// and a resumed run sees exactly the batches it would have seen.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    examples: usize,
    batch_size: usize,
    seed: u64,
    epoch: Option<(usize, Vec<usize>)>,
}

impl BatchOrder {
    /// The order of batches of `batch_size` drawn from `examples` examples.
    pub fn new(examples: usize, batch_size: usize, seed: u64) -> Self {
        Self {
            examples,
            batch_size,
            seed,
            epoch: None,
        }
    }

    /// Indices of the examples of `step`'s batch.
    pub fn indices(&mut self, step: usize) -> Vec<usize> {
        (0..self.batch_size)
            .map(|j| {
                let global = step * self.batch_size + j;
                let (epoch, at) = (global / self.examples, global % self.examples);
                self.permutation(epoch)[at]
            })
            .collect()
    }

    fn permutation(&mut self, epoch: usize) -> &[usize] {
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..self.examples).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(
                self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            order.shuffle(&mut rng);
            self.epoch = Some((epoch, order));
        }
        &self.epoch.as_ref().expect("just set").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpcot_tasks::{TaskOptions, TaskSpec};

    #[test]
    fn targets_are_shifted_and_the_mask_starts_after_the_prompt() {
        let device = Device::default();
        let a = Example {
            tokens: vec![5, 6, 1, 7, 2],
            prompt_len: 3,
        };
        let b = Example {
            tokens: vec![5, 1, 8, 2],
            prompt_len: 2,
        };
        let task = TaskSpec::from_name("lis", 3, &TaskOptions::default())
            .unwrap()
            .build()
            .unwrap();
        let batch = Batch::new(&[&a, &b], &task, &device);
        assert_eq!(
            batch.seq, 4,
            "padded to the longest of the batch, not a global maximum"
        );
        assert_eq!(batch.host_targets, vec![6, 1, 7, 2, 1, 8, 2, PAD]);
        assert_eq!(
            batch.host_mask,
            vec![false, false, true, true, false, true, true, false]
        );
        assert_eq!(batch.supervised, 4);
        let inputs: Vec<i64> = batch.inputs.into_data().iter::<i64>().collect();
        assert_eq!(inputs, vec![5, 6, 1, 7, 5, 1, 8, 0]);
    }

    #[test]
    fn tokens_the_task_gives_are_not_supervised() {
        let device = Device::default();
        let options = TaskOptions {
            window: Some(2),
            inline_inputs: true,
            ..TaskOptions::default()
        };
        let task = TaskSpec::from_name("lis", 3, &options)
            .unwrap()
            .build()
            .unwrap();
        let example = task
            .parse_example("20 30 10 <sep> 20 1 1 30 2 2 10 1 2 <sep> 2")
            .unwrap();
        let batch = Batch::new(&[&example], &task, &device);
        // Targets 1.. of the 14 inputs: the prompt's 3 numbers and <sep> are not supervised, nor
        // the given a_i at completion positions 0, 3, 6.
        let expected: Vec<bool> = (1..example.tokens.len())
            .map(|t| t >= 4 && !((t - 4) % 3 == 0 && t - 4 < 9))
            .collect();
        assert_eq!(batch.host_mask, expected);
        assert_eq!(
            batch.supervised, 9,
            "dp and r of 3 steps, the <sep>, answer and <eos>"
        );

        let plain = TaskSpec::from_name(
            "lis",
            3,
            &TaskOptions {
                window: Some(2),
                ..TaskOptions::default()
            },
        )
        .unwrap()
        .build()
        .unwrap();
        let batch = Batch::new(&[&example], &plain, &device);
        assert_eq!(
            batch.supervised, 12,
            "a task that gives nothing supervises all"
        );
    }

    #[test]
    fn every_example_once_per_epoch_and_order_depends_only_on_seed_and_step() {
        let mut order = BatchOrder::new(10, 5, 3);
        let mut epoch: Vec<usize> = [order.indices(0), order.indices(1)].concat();
        epoch.sort_unstable();
        assert_eq!(epoch, (0..10).collect::<Vec<_>>());
        let step_7 = order.indices(7);
        assert_eq!(
            BatchOrder::new(10, 5, 3).indices(7),
            step_7,
            "no hidden state"
        );
        assert_ne!(BatchOrder::new(10, 5, 4).indices(7), step_7);
    }
}
