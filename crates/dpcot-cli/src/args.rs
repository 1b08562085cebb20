//! Flags several subcommands share: the task, the model, the backend; and how errors print.

use anyhow::{bail, Context, Result};
use clap::Args;
use dpcot_model::dpcot_attention::AttentionKind;
use dpcot_model::{ModelChoice, ModelFamily, ModelOverrides};
use dpcot_tasks::{TaskKind, TaskOptions, TaskSpec};
use dpcot_train::Backend;

/// Which task, and its knobs.
#[derive(Args)]
pub struct TaskArgs {
    /// The task.
    #[arg(long, value_enum)]
    task: TaskKind,
    /// Number of operators (arithmetic) or input length (lis, ed).
    #[arg(long)]
    size: usize,
    #[command(flatten)]
    options: TaskOptions,
}

impl TaskArgs {
    /// The task these flags name.
    pub fn spec(&self) -> Result<TaskSpec> {
        Ok(TaskSpec::new(self.task, self.size, &self.options)?)
    }
}

/// Which model (its attention's settings are [`ModelOverrides`]).
#[derive(Args)]
pub struct ModelArgs {
    /// The compared model.
    #[arg(long, value_enum, default_value_t = ModelFamily::Standard)]
    model: ModelFamily,
    /// Sliding-window width, with --model sliding (required there).
    #[arg(long, required_if_eq("model", "sliding"))]
    attention_window: Option<usize>,
}

impl ModelArgs {
    /// The model's name, as in profiles and reports.
    pub fn choice(&self) -> Result<ModelChoice> {
        ModelChoice::new(self.model, self.attention_window)
            .context("--attention-window goes with --model sliding, and only with it")
    }

    /// The attention of every layer, before `settings` are applied; an error if `settings`
    /// hold sparse or DeltaNet settings for another model.
    pub fn attention(&self, settings: &ModelOverrides) -> Result<AttentionKind> {
        let choice = self.choice()?;
        if settings.sets_sparse() && choice != ModelChoice::Sparse {
            bail!("--sparse-block-size and --sparse-summary-width go with --model sparse, not {choice}");
        }
        if settings.negative_eigenvalues.is_some() && choice != ModelChoice::DeltaNet {
            bail!("--negative-eigenvalues goes with --model deltanet, not {choice}");
        }
        Ok(choice.attention())
    }
}

/// The backend to run on.
#[derive(Args)]
pub struct BackendArgs {
    /// Backend among those compiled in [default: the first compiled, GPUs first].
    #[arg(long, value_enum)]
    backend: Option<Backend>,
}

impl BackendArgs {
    /// The backend given, or the default one; an error if it is not compiled in.
    pub fn backend(&self) -> Result<Backend> {
        let backend = match self.backend {
            Some(backend) => backend,
            None => Backend::default_compiled()
                .context("no backend compiled in; build with --features flex")?,
        };
        if !backend.is_compiled() {
            bail!("the {backend} backend is not compiled in; rebuild with `--features {backend}`");
        }
        Ok(backend)
    }
}

/// The error and its causes, leaving out a cause whose text the message already holds (our
/// error types print their source inline).
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}
