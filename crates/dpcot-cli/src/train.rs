//! `dpcot train`: one run, configured by flags over the library's defaults.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dpcot_model::config::flag_help;
use dpcot_model::{ModelConfig, ModelOverrides};
use dpcot_tasks::DpTask;
use dpcot_train::{
    DataOverrides, DataSource, Resume, RunConfig, RunDir, TrainConfig, TrainError, TrainOptions,
    TrainOverrides,
};

use crate::args::{BackendArgs, ModelArgs, TaskArgs};
use crate::eval::print_eval;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    task: TaskArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Embedding dimension.
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    #[command(flatten)]
    model_settings: ModelOverrides,
    #[command(flatten)]
    train: TrainOverrides,
    /// Stop early once the headline accuracy reaches this fraction.
    #[arg(long)]
    target: Option<f64>,
    /// Seed of the initialisation, the data, the batch order and dropout.
    #[arg(long, help = flag_help("Seed of the initialisation, the data, the batch order and dropout", TrainConfig::DEFAULT_SEED))]
    seed: Option<u64>,
    /// A dataset directory from `dpcot generate` or `dpcot import`; otherwise data is
    /// generated. Its validation split is the end of its train.txt (--validation-examples).
    #[arg(long, conflicts_with_all = ["train_examples", "test_examples", "mix_smaller"])]
    data: Option<PathBuf>,
    #[command(flatten)]
    generated: DataOverrides,
    /// Run directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop with a checkpoint after N steps (resume later with --resume).
    #[arg(long)]
    halt_after: Option<usize>,
    #[command(flatten)]
    backend: BackendArgs,
}

impl TrainArgs {
    /// The run these flags describe: the library's defaults with what was given replaced.
    fn run_config(&self) -> Result<RunConfig> {
        let task = self.task.spec()?;
        let built = task.build()?;
        let model = self.model_settings.apply(ModelConfig::new(
            built.vocab().len(),
            built.max_len(),
            self.d_model,
            self.model.attention(&self.model_settings)?,
        ));
        let seed = self.seed.unwrap_or(TrainConfig::DEFAULT_SEED);
        let train = self
            .train
            .config()
            .with_seed(seed)
            .with_target_accuracy(self.target);
        let data = match &self.data {
            Some(path) => DataSource::Directory {
                path: path.clone(),
                validation: self.generated.validation(),
            },
            None => self.generated.generated(&task, seed),
        };
        Ok(RunConfig {
            task,
            model,
            train,
            data,
        })
    }
}

pub fn run(args: TrainArgs, quiet: bool) -> Result<()> {
    let config = args.run_config()?;
    // Refused before the run is announced: the announcement's parameter count assumes a valid
    // model.
    config.validate()?;
    let options = TrainOptions {
        backend: args.backend.backend()?,
        resume: if args.resume {
            Resume::Checkpoint
        } else {
            Resume::No
        },
        quiet,
        halt_after: args.halt_after,
    };
    if !quiet {
        eprintln!(
            "{}: {} model, d_model {}, {} parameters, on {} -> {}",
            config.task.build()?.name(),
            args.model.choice()?,
            config.model.d_model,
            dpcot_model::flops::parameters(&config.model),
            options.backend,
            args.out.display()
        );
    }
    let dir = RunDir::new(&args.out);
    let summary = dpcot_train::train(&dir, &config, &options).map_err(with_hint)?;
    print_summary(&summary, &dir);
    Ok(())
}

/// What a finished run reached, and where its summary is.
pub fn print_summary(summary: &dpcot_train::RunSummary, dir: &RunDir) {
    print_eval(
        &format!("{} after {} steps", summary.task, summary.steps),
        &summary.eval,
    );
    println!(
        "trained {} steps in {:.1}s ({:.0} tokens/s, {:.3e} FLOPs); summary in {}",
        summary.steps,
        summary.train_seconds,
        summary.train_tokens_per_second,
        summary.train_flops,
        dir.summary().display()
    );
}

/// The library says what is wrong; the command line adds how to fix it with its flags.
fn with_hint(err: TrainError) -> anyhow::Error {
    let hint = match &err {
        TrainError::RunExists { .. } => "pass --resume to continue it, or choose another --out",
        TrainError::Halted { .. } => "continue it with the same command and --resume",
        _ => return err.into(),
    };
    anyhow::anyhow!("{err}; {hint}")
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use dpcot_model::dpcot_attention::AttentionKind;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn parse(flags: &str) -> Result<TrainArgs, clap::Error> {
        let argv = format!("train --task lis --size 4 --out run {flags}");
        Command::try_parse_from(argv.split_whitespace()).map(|c| c.args)
    }

    #[test]
    fn unset_flags_keep_the_library_defaults() {
        let config = parse("").unwrap().run_config().unwrap();
        let task = config.task.build().unwrap();
        assert_eq!(
            config.model,
            ModelConfig::new(
                task.vocab().len(),
                task.max_len(),
                64,
                AttentionKind::Softmax
            )
        );
        assert_eq!(
            config.train,
            TrainConfig::new(TrainConfig::DEFAULT_STEPS).with_seed(TrainConfig::DEFAULT_SEED)
        );
        assert_eq!(
            config.data,
            DataOverrides::default().generated(&config.task, TrainConfig::DEFAULT_SEED)
        );
    }

    #[test]
    fn given_flags_replace_only_their_field() {
        let config = parse(
            "--n-layers 2 --learning-rate 0.01 --model sparse --sparse-block-size 4 --seed 7",
        )
        .unwrap()
        .run_config()
        .unwrap();
        assert_eq!(config.model.n_layers, 2);
        assert_eq!(config.model.n_heads, ModelConfig::DEFAULT_N_HEADS);
        assert_eq!(config.model.attention, AttentionKind::sparse(Some(4)));
        assert_eq!((config.train.learning_rate, config.train.seed), (0.01, 7));
        assert_eq!(config.train.batch_size, TrainConfig::DEFAULT_BATCH_SIZE);
    }

    #[test]
    fn flags_that_do_not_apply_are_errors() {
        let err = parse("--sparse-block-size 4")
            .unwrap()
            .run_config()
            .unwrap_err();
        assert!(err.to_string().contains("--sparse-block-size"), "{err}");
        let err = parse("--attention-window 4")
            .unwrap()
            .run_config()
            .unwrap_err();
        assert!(format!("{err:#}").contains("--attention-window"), "{err:#}");
        assert!(parse("--model sliding").is_err(), "sliding needs a window");
        assert!(parse("--data d --train-examples 5").is_err());
        assert!(parse("--model softmax").is_err(), "one spelling per model");
        let err = parse("--model gla --negative-eigenvalues true")
            .unwrap()
            .run_config()
            .unwrap_err();
        assert!(err.to_string().contains("--negative-eigenvalues"), "{err}");
    }

    #[test]
    fn the_models_beyond_the_paper_are_chosen_by_name() {
        let config = |flags: &str| parse(flags).unwrap().run_config().unwrap();
        assert_eq!(config("--model gla").model.attention, AttentionKind::gla());
        assert_eq!(
            config("--model mamba").model.attention,
            AttentionKind::mamba()
        );
        let mut negative = AttentionKind::delta_net();
        if let AttentionKind::DeltaNet {
            negative_eigenvalues,
            ..
        } = &mut negative
        {
            *negative_eigenvalues = true;
        }
        let deltanet = config("--model deltanet --negative-eigenvalues true");
        assert_eq!(deltanet.model.attention, negative);
        assert_ne!(negative, AttentionKind::delta_net());
    }

    #[test]
    fn help_shows_the_defaults_of_the_library() {
        let help = Command::command().render_help().to_string();
        for (flag, default) in [
            ("--n-layers", ModelConfig::DEFAULT_N_LAYERS.to_string()),
            ("--batch-size", TrainConfig::DEFAULT_BATCH_SIZE.to_string()),
            ("--steps", TrainConfig::DEFAULT_STEPS.to_string()),
        ] {
            // A flag's entry runs from its name to the next flag's.
            let start = help
                .find(&format!("{flag} "))
                .unwrap_or_else(|| panic!("{flag} not in\n{help}"));
            let entry = help[start..].split("\n  -").next().unwrap();
            assert!(entry.contains(&format!("[default: {default}]")), "{entry}");
        }
        assert!(help.contains("standard, sparse, linear, sliding"), "{help}");
    }
}
