//! `dpcot show`: a few examples of a task, with its vocabulary, problem size and maximum length.

use anyhow::Result;
use clap::Args;
use dpcot_tasks::DpTask;
use dpcot_train::TrainConfig;
use rand::SeedableRng;

use crate::args::TaskArgs;

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// How many examples.
    #[arg(short = 'n', long, default_value_t = 3)]
    count: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = TrainConfig::DEFAULT_SEED)]
    seed: u64,
}

pub fn run(args: ShowArgs) -> Result<()> {
    let task = args.task.spec()?.build()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    println!("task: {}", serde_json::to_string(&task.spec())?);
    println!(
        "problem size L: {} (the longest of {} generated examples, without <eos>)",
        dpcot_tasks::empirical_max_len(&task),
        dpcot_tasks::EMPIRICAL_SAMPLES
    );
    println!("max length (with <eos>): {}", task.max_len());
    println!(
        "vocabulary ({}): {}",
        task.vocab().len(),
        task.vocab().words().join(" ")
    );
    for _ in 0..args.count {
        println!("{}", task.vocab().decode(&task.generate(&mut rng).tokens));
    }
    Ok(())
}
