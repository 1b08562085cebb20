//! From run records to the experiment's answers: accuracy grids, minimal dimensions and the
//! compute each model spends at equal accuracy.

use std::collections::BTreeMap;

use dpcot_tasks::{DpTask, TaskSpec};
use serde::Serialize;

use crate::profile::ModelChoice;
use crate::sweep::RunRecord;

/// One problem of an experiment: a task at one size (and locality knob).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Point {
    pub experiment: String,
    /// Task family (`lis`, `ed`, `arithmetic`), with the locality knob for local variants.
    pub family: String,
    /// The task without its locality knob (`lis`, `ed`, `arithmetic`).
    pub base: &'static str,
    /// The locality knob: LIS window m or ED band w.
    pub locality: Option<usize>,
    /// The paper's problem size: the maximum sequence length.
    pub length: usize,
    pub task: String,
}

impl Point {
    pub fn of(record: &RunRecord) -> Self {
        let spec = &record.key.task;
        let task = spec.build().expect("recorded tasks are valid");
        let (base, locality, knob) = match *spec {
            TaskSpec::Arithmetic { .. } => ("arithmetic", None, ""),
            TaskSpec::Lis { window, .. } => ("lis", window, "window"),
            TaskSpec::EditDistance { band, .. } => ("ed", band, "band"),
        };
        let family = match locality {
            None => base.to_string(),
            Some(m) => format!("{base}-{knob}{m}"),
        };
        Self {
            experiment: record.key.experiment.clone(),
            family,
            base,
            locality,
            length: task.max_len(),
            task: task.name(),
        }
    }
}

/// Mean and spread (min, max) over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Self {
            mean,
            min,
            max,
            n: values.len(),
        })
    }
}

/// What a (point, model) pair cost at its minimal dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputeAtAccuracy {
    pub experiment: String,
    pub task: String,
    pub length: usize,
    pub model: String,
    /// Minimal dimension over seeds (mean when seeds disagree).
    pub min_dim: f64,
    pub parameters: f64,
    pub decode_flops_per_token: f64,
    pub decode_seconds_per_token: f64,
    pub peak_memory_bytes: Option<f64>,
    pub train_flops: f64,
    pub train_seconds: f64,
    pub train_steps: f64,
}

/// Everything the report shows, computed from the records.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// (point, model, dim) → headline accuracies over seeds.
    pub accuracy: BTreeMap<(Point, ModelChoice, usize), Vec<f64>>,
    /// (point, model) → minimal dimension per seed (`None`: no dimension run reached it).
    pub min_dims: BTreeMap<(Point, ModelChoice), Vec<Option<usize>>>,
    pub compute: Vec<ComputeAtAccuracy>,
    pub records: Vec<RunRecord>,
}

impl Analysis {
    pub fn new(records: Vec<RunRecord>, threshold: f64) -> Self {
        let mut accuracy: BTreeMap<_, Vec<f64>> = BTreeMap::new();
        // (point, model, seed) → passing dims.
        let mut passing: BTreeMap<(Point, ModelChoice, u64), Vec<usize>> = BTreeMap::new();
        for record in &records {
            let point = Point::of(record);
            let key = &record.key;
            accuracy
                .entry((point.clone(), key.model, key.d_model))
                .or_default()
                .push(record.summary.eval.headline);
            let dims = passing.entry((point, key.model, key.seed)).or_default();
            if record.summary.eval.headline >= threshold {
                dims.push(key.d_model);
            }
        }
        let mut min_dims: BTreeMap<(Point, ModelChoice), Vec<Option<usize>>> = BTreeMap::new();
        for ((point, model, _seed), dims) in &passing {
            min_dims
                .entry((point.clone(), *model))
                .or_default()
                .push(dims.iter().copied().min());
        }

        let mut compute = Vec::new();
        for ((point, model), mins) in &min_dims {
            let at_min: Vec<&RunRecord> = records
                .iter()
                .filter(|r| r.key.model == *model && &Point::of(r) == point)
                .filter(|r| {
                    let seed_index = passing
                        .get(&(point.clone(), *model, r.key.seed))
                        .and_then(|d| d.iter().copied().min());
                    seed_index == Some(r.key.d_model)
                })
                .collect();
            if at_min.is_empty() || mins.iter().any(Option::is_none) {
                continue;
            }
            let mean = |f: &dyn Fn(&RunRecord) -> f64| {
                at_min.iter().map(|r| f(r)).sum::<f64>() / at_min.len() as f64
            };
            let memory: Vec<f64> = at_min
                .iter()
                .filter_map(|r| r.summary.peak_memory_bytes.map(|b| b as f64))
                .collect();
            compute.push(ComputeAtAccuracy {
                experiment: point.experiment.clone(),
                task: point.task.clone(),
                length: point.length,
                model: model.name(),
                min_dim: mean(&|r| r.key.d_model as f64),
                parameters: mean(&|r| r.summary.parameters as f64),
                decode_flops_per_token: mean(&|r| r.summary.decode_flops_per_token),
                decode_seconds_per_token: mean(&|r| r.decode_seconds_per_token()),
                peak_memory_bytes: (memory.len() == at_min.len())
                    .then(|| memory.iter().sum::<f64>() / memory.len() as f64),
                train_flops: mean(&|r| r.summary.train_flops),
                train_seconds: mean(&|r| r.summary.train_seconds),
                train_steps: mean(&|r| r.summary.steps as f64),
            });
        }
        Self {
            accuracy,
            min_dims,
            compute,
            records,
        }
    }

    /// The experiments and task families present, in order.
    pub fn families(&self) -> Vec<(String, String)> {
        let mut families: Vec<(String, String)> = self
            .accuracy
            .keys()
            .map(|(p, _, _)| (p.experiment.clone(), p.family.clone()))
            .collect();
        families.sort();
        families.dedup();
        families
    }

    /// The points of a family, by length.
    pub fn points(&self, experiment: &str, family: &str) -> Vec<Point> {
        let mut points: Vec<Point> = self
            .accuracy
            .keys()
            .filter(|(p, _, _)| p.experiment == experiment && p.family == family)
            .map(|(p, _, _)| p.clone())
            .collect();
        points.sort_by_key(|p| p.length);
        points.dedup();
        points
    }

    pub fn models(&self) -> Vec<ModelChoice> {
        let mut models: Vec<ModelChoice> = self.accuracy.keys().map(|(_, m, _)| *m).collect();
        models.sort();
        models.dedup();
        models
    }

    pub fn dims(&self, experiment: &str, family: &str) -> Vec<usize> {
        let mut dims: Vec<usize> = self
            .accuracy
            .keys()
            .filter(|(p, _, _)| p.experiment == experiment && p.family == family)
            .map(|(_, _, d)| *d)
            .collect();
        dims.sort_unstable();
        dims.dedup();
        dims
    }

    /// Every point of any experiment, by family and length.
    pub fn all_points(&self) -> Vec<Point> {
        let mut points: Vec<Point> = self.accuracy.keys().map(|(p, _, _)| p.clone()).collect();
        points.sort_by(|a, b| (&a.family, a.length).cmp(&(&b.family, b.length)));
        points.dedup();
        points
    }

    /// Mean accuracy of (point, model, dim) over seeds, if run.
    pub fn mean_accuracy(&self, point: &Point, model: ModelChoice, dim: usize) -> Option<f64> {
        self.accuracy
            .get(&(point.clone(), model, dim))
            .and_then(|v| Spread::of(v))
            .map(|s| s.mean)
    }

    /// Minimal dimension of (point, model): the spread over seeds, `None` if some seed never
    /// reached the threshold.
    pub fn min_dim(&self, point: &Point, model: ModelChoice) -> Option<Spread> {
        let mins = self.min_dims.get(&(point.clone(), model))?;
        let values: Option<Vec<f64>> = mins.iter().map(|m| m.map(|d| d as f64)).collect();
        Spread::of(&values?)
    }

    /// The compute of `model` at `point`, relative to the standard model's there.
    pub fn ratio_to_standard(
        &self,
        row: &ComputeAtAccuracy,
        value: impl Fn(&ComputeAtAccuracy) -> f64,
    ) -> Option<f64> {
        let standard = self.compute.iter().find(|c| {
            c.experiment == row.experiment && c.task == row.task && c.model == "standard"
        })?;
        Some(value(row) / value(standard))
    }
}
