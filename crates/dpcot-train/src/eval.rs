//! Evaluation: greedy chain-of-thought generation checked step by step, and teacher forcing;
//! of a model in memory ([`evaluate`]) or of a run on disk ([`evaluate_run`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use burn::optim::AdamWConfig;
use burn::tensor::{Device, Int, Tensor};
use dpcot_model::generate::greedy_decode_given;
use dpcot_model::Transformer;
use dpcot_tasks::vocab::EOS;
use dpcot_tasks::{DpTask, Example, Task, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::batch::Batch;
use crate::checkpoint;
use crate::data::load_data;
use crate::run_dir::RunDir;
use crate::TrainError;

/// Which metric the paper (and the reference benchmark) reports for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Headline {
    /// Arithmetic: greedy generation from the prompt, only the final answer scored.
    AnswerAccuracy,
    /// LIS and ED: teacher-forced, an example is right only if every supervised token is the
    /// argmax.
    TeacherForced,
}

impl std::fmt::Display for Headline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Headline::AnswerAccuracy => "answer accuracy",
            Headline::TeacherForced => "teacher-forced exact match",
        })
    }
}

impl Headline {
    /// The headline metric of `task`.
    pub fn for_task(task: &TaskSpec) -> Self {
        match task {
            TaskSpec::Arithmetic { .. } => Headline::AnswerAccuracy,
            TaskSpec::Lis { .. } | TaskSpec::EditDistance { .. } => Headline::TeacherForced,
        }
    }
}

/// Everything one evaluation measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// How many examples were evaluated.
    pub examples: usize,
    /// The paper's metric for the task (see [`Headline`]).
    pub headline: f64,
    /// Which metric `headline` is.
    pub headline_metric: Headline,
    /// Free generation: the token before the first `<eos>` is the answer.
    pub answer_accuracy: f64,
    /// Free generation: every step of the chain right.
    pub chain_accuracy: f64,
    /// Free generation: the chain has the task's shape.
    pub well_formed: f64,
    /// Teacher forcing: every supervised token is the argmax.
    pub teacher_forced_accuracy: f64,
    /// Free generation: how many chains first go wrong at step i (index i); right chains are
    /// not counted.
    pub first_wrong_step: Vec<usize>,
    /// Free generation: how the first wrong step is wrong.
    pub first_wrong_kind: BTreeMap<String, usize>,
    /// Teacher forcing: first step with a wrong argmax, same layout.
    pub teacher_forced_first_wrong_step: Vec<usize>,
    /// Generated tokens (prompts excluded).
    pub decode_tokens: usize,
    /// Wall time of greedy decoding.
    pub decode_seconds: f64,
    /// `decode_tokens / decode_seconds`.
    pub decode_tokens_per_second: f64,
}

impl EvalMetrics {
    /// The free-generation histogram of first wrong steps as a person reads it: `2: 1, 3: 49`
    /// (step, counted from 1: chains), empty steps left out.
    pub fn first_wrong_steps_text(&self) -> String {
        (self.first_wrong_step.iter().enumerate())
            .filter(|(_, &count)| count > 0)
            .map(|(step, count)| format!("{}: {count}", step + 1))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How the first wrong steps are wrong, as a person reads it: `wrong value: 50`.
    pub fn first_wrong_kinds_text(&self) -> String {
        (self.first_wrong_kind.iter())
            .map(|(kind, count)| format!("{}: {count}", kind.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Evaluates `model` (on a device without autodiff) on `examples`.
pub fn evaluate(
    model: &Transformer,
    task: &Task,
    examples: &[Example],
    batch_size: usize,
    device: &Device,
) -> Result<EvalMetrics, TrainError> {
    let n = examples.len().max(1) as f64;
    let headline_metric = Headline::for_task(&task.spec());

    // Teacher forcing: one parallel forward per batch.
    let mut tf_right = 0;
    let mut tf_first_wrong = Vec::new();
    for chunk in examples.chunks(batch_size) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = Batch::new(&refs, task, device);
        let predicted: Tensor<3, Int> = model.forward(batch.inputs.clone()).argmax(2);
        let predicted: Vec<i64> = predicted.into_data().iter::<i64>().collect();
        for (r, example) in chunk.iter().enumerate() {
            let row = r * batch.seq..(r + 1) * batch.seq;
            let wrong = row
                .clone()
                .find(|&i| batch.host_mask[i] && predicted[i] != batch.host_targets[i] as i64);
            match wrong {
                None => tf_right += 1,
                Some(i) => {
                    // Input position t predicts completion token t + 1 − prompt_len.
                    let t = i - row.start;
                    let steps = task.steps_of(example)?;
                    bump(&mut tf_first_wrong, steps[t + 1 - example.prompt_len]);
                }
            }
        }
    }

    // Free generation, batched by prompt length (the caches advance all rows together).
    let mut by_prompt_len: HashMap<usize, Vec<&Example>> = HashMap::new();
    for example in examples {
        by_prompt_len
            .entry(example.prompt_len)
            .or_default()
            .push(example);
    }
    let mut groups: Vec<_> = by_prompt_len.into_iter().collect();
    groups.sort_by_key(|(len, _)| *len);

    let (mut answers, mut chains, mut well_formed, mut decode_tokens) = (0, 0, 0, 0);
    let mut first_wrong_step = Vec::new();
    let mut first_wrong_kind = BTreeMap::new();
    let started = Instant::now();
    for (_, group) in groups {
        for chunk in group.chunks(batch_size) {
            let prompts: Vec<Vec<u32>> = chunk.iter().map(|e| e.prompt().to_vec()).collect();
            let given = |row: usize, index: usize| task.given(&prompts[row], index);
            let outputs =
                greedy_decode_given(model, &prompts, &given, EOS, task.max_len(), device)?;
            for (example, output) in chunk.iter().zip(&outputs) {
                decode_tokens += output.len();
                let report = task.check(example.prompt(), output)?;
                answers += report.answer_correct as usize;
                chains += report.is_correct() as usize;
                well_formed += report.well_formed as usize;
                if let Some(wrong) = report.first_wrong {
                    bump(&mut first_wrong_step, wrong.step);
                    *first_wrong_kind
                        .entry(wrong.kind.as_str().to_string())
                        .or_insert(0) += 1;
                }
            }
        }
    }
    let decode_seconds = started.elapsed().as_secs_f64();

    let answer_accuracy = answers as f64 / n;
    let teacher_forced_accuracy = tf_right as f64 / n;
    Ok(EvalMetrics {
        examples: examples.len(),
        headline: match headline_metric {
            Headline::AnswerAccuracy => answer_accuracy,
            Headline::TeacherForced => teacher_forced_accuracy,
        },
        headline_metric,
        answer_accuracy,
        chain_accuracy: chains as f64 / n,
        well_formed: well_formed as f64 / n,
        teacher_forced_accuracy,
        first_wrong_step,
        first_wrong_kind,
        teacher_forced_first_wrong_step: tf_first_wrong,
        decode_tokens,
        decode_seconds,
        decode_tokens_per_second: decode_tokens as f64 / decode_seconds.max(1e-9),
    })
}

/// Evaluates the model of a finished (or halted) run on its whole test split.
pub fn evaluate_run(
    dir: &RunDir,
    backend: Backend,
    batch_size: usize,
) -> Result<(Task, EvalMetrics), TrainError> {
    let config = dir.read_config()?;
    let task = config.task.build()?;
    let test = load_data(&config, &task)?.test;
    let device = backend.device()?;
    // Only the weights are used; the optimizer state is read to check the file and dropped.
    let optimizer = AdamWConfig::new().init();
    let (_, model, _) = checkpoint::load(&dir.checkpoint(), &config.model, &device, optimizer)?;
    let metrics = evaluate(&model, &task, &test, batch_size, &device)?;
    Ok((task, metrics))
}

fn bump(histogram: &mut Vec<usize>, at: usize) {
    if histogram.len() <= at {
        histogram.resize(at + 1, 0);
    }
    histogram[at] += 1;
}
