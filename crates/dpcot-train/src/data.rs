//! The examples a run trains, validates and is tested on.

use dpcot_tasks::stream::{draw, draw_distinct, ExampleStream, HeldOut, Sampler};
use dpcot_tasks::{Dataset, Example, Split, Task};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::batch::BatchOrder;
use crate::config::{DataSource, RunConfig};
use crate::TrainError;

/// The three splits of a run. Validation and test are disjoint, and neither is ever trained on.
#[derive(Debug, Clone)]
pub struct RunData {
    /// Where training batches come from.
    pub train: TrainExamples,
    /// What intermediate evaluations, early stopping and pass/fail decisions read.
    pub validation: Vec<Example>,
    /// What the final report shows.
    pub test: Vec<Example>,
}

/// The training examples of a run.
#[derive(Debug, Clone)]
pub enum TrainExamples {
    /// A fixed set, shuffled anew every epoch.
    Fixed {
        /// The examples.
        examples: Vec<Example>,
        /// Which examples make up each step's batch.
        order: BatchOrder,
    },
    /// Fresh examples every step.
    Stream(ExampleStream),
}

impl TrainExamples {
    /// The batch of step `step` (0-based): a function of the run's seed and the step alone, so
    /// a resumed run trains on exactly the batches it would have.
    pub fn batch(&mut self, step: usize, batch_size: usize) -> Result<Vec<Example>, TrainError> {
        match self {
            TrainExamples::Fixed { examples, order } => Ok(order
                .indices(step)
                .into_iter()
                .map(|i| examples[i].clone())
                .collect()),
            TrainExamples::Stream(stream) => Ok(stream.batch(step, batch_size)?),
        }
    }
}

/// The seed of the training stream, apart from the seed of the held-out splits (the stream's
/// examples are drawn from ChaCha streams of their own, one per step).
fn stream_seed(seed: u64) -> u64 {
    const SALT: u64 = 0x5354_5245_414D_0001; // "STREAM" 1
    seed ^ SALT
}

/// The splits of `config`: read from its dataset directory, or generated from the task and
/// seed.
pub fn load_data(config: &RunConfig, task: &Task) -> Result<RunData, TrainError> {
    config.data.validate()?;
    let batch_size = config.train.batch_size;
    let seed = config.train.seed;
    match &config.data {
        DataSource::Directory { path, validation } => {
            let train =
                Dataset::read_expecting(&Split::Train.path_in(path), &config.task, Split::Train)?;
            let test =
                Dataset::read_expecting(&Split::Test.path_in(path), &config.task, Split::Test)?;
            let mut train = train.examples;
            if train.len() <= *validation || test.examples.is_empty() {
                return Err(TrainError::Data(format!(
                    "{}: {} training and {} test examples; the validation split takes {} \
                     training examples and at least one must be left for training, one for test",
                    path.display(),
                    train.len(),
                    test.examples.len(),
                    validation
                )));
            }
            let validation = train.split_off(train.len() - validation);
            let held_out = HeldOut::new(&validation);
            train.retain(|e| !held_out.contains(e));
            if train.is_empty() {
                return Err(TrainError::Data(format!(
                    "{}: every training example equals a validation example",
                    path.display()
                )));
            }
            Ok(RunData {
                train: TrainExamples::Fixed {
                    order: BatchOrder::new(train.len(), batch_size, seed),
                    examples: train,
                },
                validation,
                test: test.examples,
            })
        }
        DataSource::Generated {
            train,
            validation,
            test,
            seed: data_seed,
            mix_smaller,
        } => {
            let full_size = Sampler::new(task.clone(), false)?;
            let mut rng = ChaCha8Rng::seed_from_u64(*data_seed);
            // The test split is drawn first and as `dpcot generate` draws it, so it does not
            // depend on the other splits' sizes.
            let test = draw(&full_size, &mut rng, *test, &HeldOut::default(), "test")?;
            let mut held_out = HeldOut::new(&test);
            let validation = draw_distinct(
                &full_size,
                &mut rng,
                *validation,
                &mut held_out,
                "validation",
            )?;
            held_out.check_room_to_train(&full_size)?;
            let sampler = Sampler::new(task.clone(), *mix_smaller)?;
            let train = match train {
                Some(count) => {
                    let examples = draw(&sampler, &mut rng, *count, &held_out, "train")?;
                    TrainExamples::Fixed {
                        order: BatchOrder::new(examples.len(), batch_size, seed),
                        examples,
                    }
                }
                None => TrainExamples::Stream(ExampleStream::new(
                    sampler,
                    held_out,
                    stream_seed(*data_seed),
                )),
            };
            Ok(RunData {
                train,
                validation,
                test,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use dpcot_model::ModelConfig;
    use dpcot_tasks::{DpTask, TaskKind, TaskOptions, TaskSpec};

    use super::*;
    use crate::TrainConfig;

    fn config(train: Option<usize>) -> RunConfig {
        // Arithmetic over Z_5 with one operator: 100 problems, so the held-out ones come up.
        let options = TaskOptions {
            modulus: Some(5),
            ..Default::default()
        };
        let task = TaskSpec::new(TaskKind::Arithmetic, 1, &options).unwrap();
        let built = task.build().unwrap();
        RunConfig {
            model: ModelConfig::new(built.vocab().len(), built.max_len(), 8, Default::default()),
            data: DataSource::Generated {
                train,
                validation: 20,
                test: 20,
                seed: 3,
                mix_smaller: false,
            },
            task,
            train: TrainConfig::new(10),
        }
    }

    #[test]
    fn no_validation_or_test_example_is_ever_trained_on() {
        for train in [None, Some(40)] {
            let config = config(train);
            let mut data = load_data(&config, &config.task.build().unwrap()).unwrap();
            assert_eq!((data.validation.len(), data.test.len()), (20, 20));
            assert!(data.validation.iter().all(|v| !data.test.contains(v)));
            for step in 0..40 {
                for example in data.train.batch(step, 16).unwrap() {
                    assert!(
                        !data.validation.contains(&example) && !data.test.contains(&example),
                        "{train:?}: step {step} trains on a held-out example"
                    );
                }
            }
        }
    }

    #[test]
    fn held_out_splits_that_take_most_of_the_problem_space_are_an_error() {
        // LIS with n = 2 from [3, 23]: 441 problems, of which 200 + 200 would be held out.
        let options = TaskOptions {
            range: Some(24),
            ..Default::default()
        };
        let task = TaskSpec::new(TaskKind::Lis, 2, &options).unwrap();
        let built = task.build().unwrap();
        let config = RunConfig {
            model: ModelConfig::new(built.vocab().len(), built.max_len(), 8, Default::default()),
            data: DataSource::Generated {
                train: None,
                validation: 200,
                test: 200,
                seed: 3,
                mix_smaller: false,
            },
            task,
            train: TrainConfig::new(10),
        };
        let err = load_data(&config, &built).unwrap_err().to_string();
        assert!(
            err.contains("lis-2") && err.contains("held-out accuracy would not measure"),
            "{err}"
        );
        // The same task with small splits has room to train.
        let mut small = config.clone();
        small.data = DataSource::Generated {
            train: None,
            validation: 20,
            test: 20,
            seed: 3,
            mix_smaller: false,
        };
        load_data(&small, &built).unwrap();
    }

    #[test]
    fn the_test_split_does_not_depend_on_the_training_data() {
        let task = config(None).task.build().unwrap();
        let streamed = load_data(&config(None), &task).unwrap();
        let fixed = load_data(&config(Some(40)), &task).unwrap();
        assert_eq!(streamed.test, fixed.test);
        assert_eq!(streamed.validation, fixed.validation);
    }
}
