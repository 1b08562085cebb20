//! The examples a run trains and evaluates on.

use dpcot_tasks::{Dataset, Example, GenerateConfig, Split};

use crate::config::{DataSource, RunConfig};
use crate::TrainError;

/// The train and test examples of a run: read from its dataset directory, or generated from
/// the task and seed.
pub fn load_data(config: &RunConfig) -> Result<(Vec<Example>, Vec<Example>), TrainError> {
    match &config.data {
        DataSource::Directory { path } => {
            let train =
                Dataset::read_expecting(&Split::Train.path_in(path), &config.task, Split::Train)?;
            let test =
                Dataset::read_expecting(&Split::Test.path_in(path), &config.task, Split::Test)?;
            if train.examples.is_empty() || test.examples.is_empty() {
                return Err(TrainError::Data(format!(
                    "{}: a split is empty",
                    path.display()
                )));
            }
            Ok((train.examples, test.examples))
        }
        DataSource::Generated { train, test, seed } => {
            if *train == 0 || *test == 0 {
                return Err(TrainError::invalid(
                    "data",
                    "generated splits need at least one example each",
                ));
            }
            let (train, test) = dpcot_tasks::generate(
                &GenerateConfig {
                    task: config.task.clone(),
                    train: *train,
                    test: *test,
                    seed: *seed,
                    mix_smaller: false,
                },
                |_| {},
            )?;
            Ok((train.examples, test.examples))
        }
    }
}
