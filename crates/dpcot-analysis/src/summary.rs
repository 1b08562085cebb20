//! From run records to the experiment's answers: accuracy grids, minimal dimensions, how they
//! grow with the problem size, and the compute each model spends at equal accuracy.
//!
//! Whether a run passes is decided on its validation split
//! ([`dpcot_train::RunSummary::decision_accuracy`]); every accuracy shown is the test split's.

use std::collections::BTreeMap;

use dpcot_tasks::{empirical_max_len, DpTask, TaskSpec, EMPIRICAL_SAMPLES};
use dpcot_train::RunEnding;
use serde::Serialize;

use crate::profile::{Experiment, ModelChoice};
use crate::results::RunRecord;
use crate::AnalysisError;

/// One problem of an experiment: a task at one size (and locality knob).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Point {
    /// The experiment the runs belong to (`general`, `locality`).
    pub experiment: Experiment,
    /// Task family (`lis`, `ed`, `arithmetic`), with the locality knob for local variants.
    pub family: String,
    /// The task without its locality knob (`lis`, `ed`, `arithmetic`).
    pub base: &'static str,
    /// The locality knob: LIS window m or ED band w.
    pub locality: Option<usize>,
    /// The paper's problem size L: the longest generated example's length in tokens, without
    /// `<eos>` ([`empirical_max_len`]). Only the analysis measures it; runs size their models
    /// by the task's bound, [`DpTask::max_len`].
    pub length: usize,
    /// The task's name with all its knobs (`lis-8-window2`), as in run ids.
    pub task: String,
}

/// What L means, in the words of the report's text and the figures' axes.
pub fn length_meaning() -> String {
    format!(
        "the longest generated example's length in tokens (without <eos>, over {EMPIRICAL_SAMPLES} samples)"
    )
}

/// Problem sizes already measured, by task name: [`empirical_max_len`] draws thousands of
/// examples, once per task.
type ProblemSizes = BTreeMap<String, usize>;

impl Point {
    /// The same problem in the experiment that runs the paper's models on it: the locality
    /// experiment for a local variant, the general one otherwise. A modern point's runs are
    /// compared with that point's.
    pub fn paper_counterpart(&self) -> Point {
        Point {
            experiment: if self.locality.is_some() {
                Experiment::Locality
            } else {
                Experiment::General
            },
            ..self.clone()
        }
    }

    /// The problem a run was trained on; an error if its recorded task does not build (records
    /// read from a results directory were checked when read, so this is for hand-made ones).
    pub fn of(record: &RunRecord) -> Result<Self, AnalysisError> {
        Self::measured(record, &mut ProblemSizes::new())
    }

    /// [`Point::of`], measuring each task's size once over all calls sharing `sizes`.
    fn measured(record: &RunRecord, sizes: &mut ProblemSizes) -> Result<Self, AnalysisError> {
        let spec = &record.key.task;
        let task = spec.build()?;
        let (base, locality, knob, variant) = match *spec {
            TaskSpec::Arithmetic { .. } => ("arithmetic", None, "", ""),
            TaskSpec::Lis {
                window,
                inline_inputs,
                ..
            } => (
                "lis",
                window,
                "window",
                if inline_inputs { "-inline" } else { "" },
            ),
            TaskSpec::EditDistance { band, .. } => ("ed", band, "band", ""),
        };
        let family = match locality {
            None => base.to_string(),
            Some(m) => format!("{base}-{knob}{m}{variant}"),
        };
        let name = task.name();
        let length = *sizes
            .entry(name.clone())
            .or_insert_with(|| empirical_max_len(&task));
        Ok(Self {
            experiment: record.key.experiment,
            family,
            base,
            locality,
            length,
            task: name,
        })
    }
}

/// Mean and spread (min, max) over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Mean over the values.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// How many values (seeds).
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; `None` if there are none.
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

    /// Whether the values differ (seeds disagree).
    pub fn varies(&self) -> bool {
        self.min != self.max
    }
}

/// The rule that turns several seeds into one minimal dimension: the spread of the seeds' own
/// minimal dimensions, or `None` if any seed reached the threshold at no trained dimension (a
/// problem counts as solved only if every seed solves it).
pub fn min_dim_over_seeds(per_seed: &[Option<usize>]) -> Option<Spread> {
    let dims: Option<Vec<f64>> = per_seed.iter().map(|m| m.map(|d| d as f64)).collect();
    Spread::of(&dims?)
}

/// One seed's search on one (point, model): its minimal dimension and how the run at its
/// largest trained dimension ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSearch {
    /// The seed.
    pub seed: u64,
    /// The smallest trained dimension whose run passed (on validation), `None` if none did.
    /// Dimensions the search skipped are not assumed to pass or fail.
    pub min_dim: Option<usize>,
    /// The largest dimension trained.
    pub largest_dim: usize,
    /// How the run at `largest_dim` ended (`None` for runs from before endings were recorded).
    pub ending_at_largest: Option<RunEnding>,
}

impl SeedSearch {
    /// The search as far as its first run, `record`, shows it.
    fn of(record: &RunRecord, threshold: f64) -> Self {
        let d_model = record.key.d_model;
        Self {
            seed: record.key.seed,
            min_dim: (record.summary.decision_accuracy() >= threshold).then_some(d_model),
            largest_dim: d_model,
            ending_at_largest: record.summary.ending,
        }
    }

    /// Adds another run of the same (point, model, seed).
    fn add(&mut self, record: &RunRecord, threshold: f64) {
        let next = Self::of(record, threshold);
        self.min_dim = match (self.min_dim, next.min_dim) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if next.largest_dim >= self.largest_dim {
            self.largest_dim = next.largest_dim;
            self.ending_at_largest = next.ending_at_largest;
        }
    }
}

/// Why a (point, model) pair that some seed never solved stayed unsolved, from how each failing
/// seed's run at its largest dimension ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsolved {
    /// Every failing seed's largest run plateaued: evidence the model lacks the capacity (at
    /// this training recipe).
    Plateaued,
    /// Some failing seed's largest run ran out of steps while still improving: no evidence
    /// either way.
    OutOfBudget,
    /// Some ending was not recorded (older runs), or contradicts the decision.
    Unknown,
}

impl Unsolved {
    /// The rule over the failing seeds' endings: any out of budget makes the pair out of
    /// budget, all plateaued make it plateaued, anything else is unknown.
    pub fn of(failing_endings: &[Option<RunEnding>]) -> Self {
        if failing_endings.contains(&Some(RunEnding::OutOfBudget)) {
            Unsolved::OutOfBudget
        } else if !failing_endings.is_empty()
            && failing_endings
                .iter()
                .all(|e| *e == Some(RunEnding::Plateaued))
        {
            Unsolved::Plateaued
        } else {
            Unsolved::Unknown
        }
    }

    /// The name used in CSV tables: `plateaued`, `out of budget`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unsolved::Plateaued => "plateaued",
            Unsolved::OutOfBudget => "out of budget",
            Unsolved::Unknown => "unknown",
        }
    }

    /// The word the minimal-dimension table adds to `> d`, if the reason is known.
    pub fn tag(self) -> Option<&'static str> {
        match self {
            Unsolved::Plateaued => Some("plateau"),
            Unsolved::OutOfBudget => Some("budget"),
            Unsolved::Unknown => None,
        }
    }
}

/// The least-squares slope b of log d = a + b·log L through `points` (L, d): the exponent of
/// the minimal dimension's growth with the problem size (0.5 for d ∝ √L). `None` without two
/// distinct sizes, or if a value is not positive.
pub fn growth_exponent(points: &[(f64, f64)]) -> Option<f64> {
    if points.iter().any(|&(l, d)| !(l > 0.0 && d > 0.0)) {
        return None;
    }
    let logs: Vec<(f64, f64)> = points.iter().map(|&(l, d)| (l.ln(), d.ln())).collect();
    let n = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// How one model's minimal dimension grows with L on one task family: the
/// [`growth_exponent`] of each seed's own minimal dimensions over the sizes every seed solved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Growth {
    /// The experiment.
    pub experiment: Experiment,
    /// The task family.
    pub family: String,
    /// The model.
    pub model: ModelChoice,
    /// Sizes of the family the model was searched on.
    pub sizes: usize,
    /// Of them, sizes some seed did not solve: left out of the fit.
    pub unsolved: usize,
    /// Whether every unsolved size is larger than every solved one: the dimension needed
    /// there is above the grid, so the slope understates the growth.
    pub unsolved_above: bool,
    /// The slope over the seeds (`None` with fewer than two solved sizes).
    pub slope: Option<Spread>,
}

/// What a (point, model) pair cost at its minimal dimension: every field is the mean over
/// seeds of the run at that seed's own minimal dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputeAtAccuracy {
    /// The experiment of the point.
    pub experiment: Experiment,
    /// The task's name with its knobs ([`Point::task`]).
    pub task: String,
    /// The problem size ([`Point::length`]).
    pub length: usize,
    /// The model's name ([`ModelChoice::name`]).
    pub model: String,
    /// Minimal dimension over seeds (mean when seeds disagree).
    pub min_dim: f64,
    /// Trainable parameters.
    pub parameters: f64,
    /// FLOPs per generated token (mean over positions 0..max_len).
    pub decode_flops_per_token: f64,
    /// Measured wall time of greedy decoding per generated token, in seconds.
    pub decode_seconds_per_token: f64,
    /// Bytes of decoding state carried from one generated token to the next at the end of the
    /// longest example (position L): the KV cache, the sparse or sliding cache, or the
    /// recurrent state ([`dpcot_model::flops::decode_state_bytes`]).
    pub state_bytes: f64,
    /// Peak resident memory of the run process; `None` unless every seed's run recorded it.
    pub peak_memory_bytes: Option<f64>,
    /// FLOPs of all training steps.
    pub train_flops: f64,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Training steps taken (early stopping makes them differ).
    pub train_steps: f64,
}

impl ComputeAtAccuracy {
    /// The mean cost of `runs`: one run per seed, each at its seed's minimal dimension.
    fn mean_of(point: &Point, model: ModelChoice, runs: &[&RunRecord]) -> Self {
        let mean = |f: &dyn Fn(&RunRecord) -> f64| {
            runs.iter().map(|r| f(r)).sum::<f64>() / runs.len() as f64
        };
        let memory: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.summary.peak_memory_bytes.map(|b| b as f64))
            .collect();
        Self {
            experiment: point.experiment,
            task: point.task.clone(),
            length: point.length,
            model: model.name(),
            min_dim: mean(&|r| r.key.d_model as f64),
            parameters: mean(&|r| r.summary.parameters as f64),
            decode_flops_per_token: mean(&|r| r.summary.decode_flops_per_token),
            decode_seconds_per_token: mean(&|r| r.decode_seconds_per_token()),
            state_bytes: mean(&|r| {
                dpcot_model::flops::decode_state_bytes(&r.config.model, point.length)
                    .map_or(f64::NAN, |b| b as f64)
            }),
            peak_memory_bytes: (memory.len() == runs.len())
                .then(|| memory.iter().sum::<f64>() / memory.len() as f64),
            train_flops: mean(&|r| r.summary.train_flops),
            train_seconds: mean(&|r| r.summary.train_seconds),
            train_steps: mean(&|r| r.summary.steps as f64),
        }
    }
}

/// Everything the report shows, computed from the records.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// (point, model, dim) → test accuracies (headline) over seeds.
    pub accuracy: BTreeMap<(Point, ModelChoice, usize), Vec<f64>>,
    /// (point, model) → each seed's search, by seed.
    pub searches: BTreeMap<(Point, ModelChoice), Vec<SeedSearch>>,
    /// The cost of every (point, model) pair that every seed solved, by point and model.
    pub compute: Vec<ComputeAtAccuracy>,
    /// The records analysed, in the order given.
    pub records: Vec<RunRecord>,
    /// The point of each record, in the same order.
    points: Vec<Point>,
}

impl Analysis {
    /// Analyses `records`: a run solves its problem when its decision accuracy (validation,
    /// else test) reaches `threshold`. An error if a record's task does not build.
    pub fn new(records: Vec<RunRecord>, threshold: f64) -> Result<Self, AnalysisError> {
        let mut sizes = ProblemSizes::new();
        let points: Vec<Point> = records
            .iter()
            .map(|r| Point::measured(r, &mut sizes))
            .collect::<Result<_, _>>()?;
        let mut accuracy: BTreeMap<_, Vec<f64>> = BTreeMap::new();
        let mut by_seed: BTreeMap<(Point, ModelChoice), BTreeMap<u64, SeedSearch>> =
            BTreeMap::new();
        for (point, record) in points.iter().zip(&records) {
            let key = &record.key;
            accuracy
                .entry((point.clone(), key.model, key.d_model))
                .or_default()
                .push(record.summary.eval.headline);
            by_seed
                .entry((point.clone(), key.model))
                .or_default()
                .entry(key.seed)
                .and_modify(|search| search.add(record, threshold))
                .or_insert_with(|| SeedSearch::of(record, threshold));
        }
        let searches: BTreeMap<_, Vec<SeedSearch>> = by_seed
            .into_iter()
            .map(|(pair, seeds)| (pair, seeds.into_values().collect()))
            .collect();
        let mut analysis = Self {
            accuracy,
            searches,
            compute: Vec::new(),
            records,
            points,
        };
        analysis.compute = analysis.compute_at_min_dims();
        Ok(analysis)
    }

    /// The cost of every pair every seed solved, each seed's run taken at its own minimum.
    fn compute_at_min_dims(&self) -> Vec<ComputeAtAccuracy> {
        let mut compute = Vec::new();
        for ((point, model), seeds) in &self.searches {
            if seeds.iter().any(|s| s.min_dim.is_none()) {
                continue;
            }
            let at_min: Vec<&RunRecord> = self
                .runs()
                .filter(|(p, r)| r.key.model == *model && *p == point)
                .filter(|(_, r)| {
                    seeds
                        .iter()
                        .any(|s| s.seed == r.key.seed && s.min_dim == Some(r.key.d_model))
                })
                .map(|(_, r)| r)
                .collect();
            if !at_min.is_empty() {
                compute.push(ComputeAtAccuracy::mean_of(point, *model, &at_min));
            }
        }
        compute
    }

    /// Every record with its point.
    pub fn runs(&self) -> impl Iterator<Item = (&Point, &RunRecord)> {
        self.points.iter().zip(&self.records)
    }

    /// The experiments and task families present, in order.
    pub fn families(&self) -> Vec<(Experiment, String)> {
        let mut families: Vec<(Experiment, String)> = self
            .accuracy
            .keys()
            .map(|(p, _, _)| (p.experiment, p.family.clone()))
            .collect();
        families.sort();
        families.dedup();
        families
    }

    /// The points of a family, by length.
    pub fn points(&self, experiment: Experiment, family: &str) -> Vec<Point> {
        let mut points: Vec<Point> = self
            .family_keys(experiment, family)
            .map(|(p, _, _)| p.clone())
            .collect();
        points.sort_by_key(|p| p.length);
        points.dedup();
        points
    }

    /// The (point, model, dimension) keys of one experiment's family.
    fn family_keys<'a>(
        &'a self,
        experiment: Experiment,
        family: &'a str,
    ) -> impl Iterator<Item = &'a (Point, ModelChoice, usize)> + 'a {
        self.accuracy
            .keys()
            .filter(move |(p, _, _)| p.experiment == experiment && p.family == family)
    }

    /// The models present, in order.
    pub fn models(&self) -> Vec<ModelChoice> {
        let mut models: Vec<ModelChoice> = self.accuracy.keys().map(|(_, m, _)| *m).collect();
        models.sort();
        models.dedup();
        models
    }

    /// The models trained on some problem of a family, in order: a results directory with
    /// several experiments holds models (the sliding windows, the modern ones) that another
    /// experiment's figures have no row for.
    pub fn models_on(&self, experiment: Experiment, family: &str) -> Vec<ModelChoice> {
        let mut models: Vec<ModelChoice> = self
            .family_keys(experiment, family)
            .map(|(_, m, _)| *m)
            .collect();
        models.sort();
        models.dedup();
        models
    }

    /// The dimensions trained for any point of a family, ascending.
    pub fn dims(&self, experiment: Experiment, family: &str) -> Vec<usize> {
        let mut dims: Vec<usize> = self
            .family_keys(experiment, family)
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

    /// Mean test accuracy of (point, model, dim) over seeds, if run.
    pub fn mean_accuracy(&self, point: &Point, model: ModelChoice, dim: usize) -> Option<f64> {
        self.accuracy
            .get(&(point.clone(), model, dim))
            .and_then(|v| Spread::of(v))
            .map(|s| s.mean)
    }

    /// Each seed's minimal dimension on (point, model), by seed; `None` if it was not run.
    pub fn seed_min_dims(&self, point: &Point, model: ModelChoice) -> Option<Vec<Option<usize>>> {
        let seeds = self.searches.get(&(point.clone(), model))?;
        Some(seeds.iter().map(|s| s.min_dim).collect())
    }

    /// Minimal dimension of (point, model) by [`min_dim_over_seeds`]: `None` if it was not run
    /// or some seed never reached the threshold.
    pub fn min_dim(&self, point: &Point, model: ModelChoice) -> Option<Spread> {
        min_dim_over_seeds(&self.seed_min_dims(point, model)?)
    }

    /// Why (point, model) stayed unsolved ([`Unsolved::of`] over its failing seeds); `None` if
    /// it was not run or every seed solved it.
    pub fn unsolved(&self, point: &Point, model: ModelChoice) -> Option<Unsolved> {
        let failing: Vec<Option<RunEnding>> = self
            .searches
            .get(&(point.clone(), model))?
            .iter()
            .filter(|s| s.min_dim.is_none())
            .map(|s| s.ending_at_largest)
            .collect();
        (!failing.is_empty()).then(|| Unsolved::of(&failing))
    }

    /// The growth of every model's minimal dimension on every task family, by experiment,
    /// family and model.
    pub fn growth(&self) -> Vec<Growth> {
        let mut rows = Vec::new();
        for (experiment, family) in self.families() {
            let points = self.points(experiment, &family);
            for model in self.models() {
                rows.extend(self.growth_of(experiment, &family, &points, model));
            }
        }
        rows
    }

    /// [`Analysis::growth`] of one model on one family's `points`; `None` if it was not run.
    fn growth_of(
        &self,
        experiment: Experiment,
        family: &str,
        points: &[Point],
        model: ModelChoice,
    ) -> Option<Growth> {
        let searched: Vec<(f64, &Vec<SeedSearch>)> = points
            .iter()
            .filter_map(|p| Some((p.length as f64, self.searches.get(&(p.clone(), model))?)))
            .collect();
        if searched.is_empty() {
            return None;
        }
        let (solved, unsolved): (Vec<_>, Vec<_>) = searched
            .iter()
            .partition(|(_, seeds)| seeds.iter().all(|s| s.min_dim.is_some()));
        let largest_solved = solved.iter().map(|(l, _)| *l).fold(0.0, f64::max);
        let mut seeds: Vec<u64> = solved
            .iter()
            .flat_map(|(_, s)| s.iter().map(|s| s.seed))
            .collect();
        seeds.sort_unstable();
        seeds.dedup();
        let slopes: Vec<f64> = seeds
            .iter()
            .filter_map(|&seed| {
                let dims: Vec<(f64, f64)> = solved
                    .iter()
                    .filter_map(|(l, s)| {
                        let dim = s.iter().find(|s| s.seed == seed)?.min_dim?;
                        Some((*l, dim as f64))
                    })
                    .collect();
                growth_exponent(&dims)
            })
            .collect();
        Some(Growth {
            experiment,
            family: family.to_string(),
            model,
            sizes: searched.len(),
            unsolved: unsolved.len(),
            unsolved_above: !unsolved.is_empty()
                && unsolved.iter().all(|(l, _)| *l > largest_solved),
            slope: Spread::of(&slopes),
        })
    }

    /// `value` of a compute row relative to the standard model's on the same problem (same
    /// experiment and task); `None` if the standard model did not solve it.
    pub fn ratio_to_standard(
        &self,
        row: &ComputeAtAccuracy,
        value: impl Fn(&ComputeAtAccuracy) -> f64,
    ) -> Option<f64> {
        // A modern model is compared with the standard model of the paper's experiment.
        let experiments = match row.experiment {
            Experiment::Modern => [Experiment::General, Experiment::Locality],
            e => [e, e],
        };
        let standard = self.compute.iter().find(|c| {
            experiments.contains(&c.experiment)
                && c.task == row.task
                && c.model == ModelChoice::Standard.name()
        })?;
        Some(value(row) / value(standard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{inline_lis, lis, local_lis, run, search, solved};
    use crate::profile::ModelChoice::{Linear, Sliding, Sparse, Standard};
    use dpcot_train::RunEnding::{OutOfBudget, Passed, Plateaued};

    const THRESHOLD: f64 = 0.9;

    fn analyse(records: Vec<RunRecord>) -> Analysis {
        Analysis::new(records, THRESHOLD).expect("fixture records are valid")
    }

    fn point(analysis: &Analysis, task: &str) -> Point {
        analysis
            .all_points()
            .into_iter()
            .find(|p| p.task == task)
            .unwrap_or_else(|| panic!("no point `{task}` in {:?}", analysis.all_points()))
    }

    fn compute<'a>(
        analysis: &'a Analysis,
        task: &str,
        model: ModelChoice,
    ) -> Option<&'a ComputeAtAccuracy> {
        analysis
            .compute
            .iter()
            .find(|c| c.task == task && c.model == model.name())
    }

    #[test]
    fn a_point_names_its_task_family_and_length() {
        let general = Point::of(&run(&lis(8), Standard, 16).record()).unwrap();
        assert_eq!(
            (
                general.family.as_str(),
                general.base,
                general.locality,
                general.task.as_str()
            ),
            ("lis", "lis", None, "lis-8"),
            "{general:?}"
        );
        assert_eq!(
            general.length,
            2 * 8 + 3,
            "the size is the longest example without <eos>, as the paper counts it"
        );
        let local = Point::of(
            &run(&local_lis(8, 2), Standard, 16)
                .experiment(Experiment::Locality)
                .record(),
        )
        .unwrap();
        assert_eq!(
            (
                local.experiment.as_str(),
                local.family.as_str(),
                local.base,
                local.locality
            ),
            ("locality", "lis-window2", "lis", Some(2)),
            "{local:?}"
        );
        let inline = Point::of(
            &run(&inline_lis(8, 2), Standard, 16)
                .experiment(Experiment::Locality)
                .record(),
        )
        .unwrap();
        assert_eq!(
            (inline.family.as_str(), inline.locality, inline.length),
            ("lis-window2-inline", Some(2), 4 * 8 + 3),
            "{inline:?}"
        );
    }

    #[test]
    fn a_record_whose_task_does_not_build_is_an_error_not_a_panic() {
        let mut record = run(&lis(8), Standard, 16).record();
        record.key.task = lis(0);
        assert!(
            matches!(Point::of(&record), Err(AnalysisError::Task(_))),
            "a zero-length LIS must not make a point"
        );
        let err = Analysis::new(vec![record], THRESHOLD).unwrap_err();
        assert!(matches!(err, AnalysisError::Task(_)), "{err}");
    }

    #[test]
    fn the_minimal_dimension_is_the_smallest_passing_one_of_a_seed() {
        // Searched in bisection order: 32 passes, 16 fails, then a larger one passes too.
        let analysis = analyse(search(
            &lis(8),
            Standard,
            1,
            &[(32, 0.95), (16, 0.5), (64, 0.99)],
        ));
        let p = point(&analysis, "lis-8");
        let found = analysis
            .min_dim(&p, Standard)
            .expect("the standard model solved lis-8");
        assert_eq!(
            (found.mean, found.min, found.max, found.n),
            (32.0, 32.0, 32.0, 1),
            "{found:?}"
        );
        assert_eq!(
            analysis.seed_min_dims(&p, Standard).unwrap(),
            vec![Some(32)]
        );
    }

    #[test]
    fn exactly_the_threshold_passes() {
        let analysis = analyse(search(&lis(8), Standard, 1, &[(16, THRESHOLD), (8, 0.89)]));
        let p = point(&analysis, "lis-8");
        assert_eq!(
            analysis.min_dim(&p, Standard).map(|s| s.mean),
            Some(16.0),
            "accuracy == threshold solves"
        );
    }

    #[test]
    fn a_dimension_the_search_skipped_is_not_assumed_to_pass() {
        // Bisection trained 64 (passes) and 16 (fails) but never 32.
        let analysis = analyse(search(&lis(8), Standard, 1, &[(64, 0.95), (16, 0.5)]));
        let p = point(&analysis, "lis-8");
        assert_eq!(
            analysis.min_dim(&p, Standard).map(|s| s.mean),
            Some(64.0),
            "only trained dims count"
        );
        assert_eq!(
            analysis.mean_accuracy(&p, Standard, 32),
            None,
            "32 was never trained"
        );
        assert_eq!(
            analysis.dims(Experiment::General, "lis"),
            vec![16, 64],
            "the trained dims, ascending"
        );
    }

    #[test]
    fn seeds_that_disagree_give_the_mean_and_range_of_their_minima() {
        let mut records = search(&lis(8), Standard, 1, &[(32, 0.95), (16, 0.5)]);
        records.extend(search(&lis(8), Standard, 2, &[(32, 0.6), (64, 0.92)]));
        records.extend(search(&lis(8), Standard, 3, &[(32, 0.91), (16, 0.2)]));
        let analysis = analyse(records);
        let p = point(&analysis, "lis-8");
        let found = analysis
            .min_dim(&p, Standard)
            .expect("every seed solved it");
        assert_eq!(
            (found.min, found.max, found.n),
            (32.0, 64.0, 3),
            "{found:?}"
        );
        assert!(
            (found.mean - 128.0 / 3.0).abs() < 1e-9,
            "mean of 32, 64, 32: {found:?}"
        );
        assert_eq!(
            analysis.mean_accuracy(&p, Standard, 32),
            Some((0.95 + 0.6 + 0.91) / 3.0)
        );
    }

    #[test]
    fn a_problem_is_solved_only_if_every_seed_solves_it() {
        assert_eq!(
            min_dim_over_seeds(&[Some(32), None]),
            None,
            "one failing seed"
        );
        assert_eq!(min_dim_over_seeds(&[]), None, "no seed at all");
        let one = min_dim_over_seeds(&[Some(32)]).expect("a single seed");
        assert_eq!((one.mean, one.min, one.max, one.n), (32.0, 32.0, 32.0, 1));

        let mut records = search(&lis(8), Sparse, 1, &[(32, 0.95), (16, 0.5)]);
        records.extend(search(&lis(8), Sparse, 2, &[(32, 0.6), (64, 0.7)]));
        let analysis = analyse(records);
        let p = point(&analysis, "lis-8");
        assert_eq!(
            analysis.seed_min_dims(&p, Sparse).unwrap(),
            vec![Some(32), None]
        );
        assert_eq!(
            analysis.min_dim(&p, Sparse),
            None,
            "seed 2 never reached the threshold"
        );
        assert!(
            compute(&analysis, "lis-8", Sparse).is_none(),
            "an unsolved pair has no compute row"
        );
    }

    #[test]
    fn when_no_model_passes_there_is_nothing_to_compare() {
        let mut records = Vec::new();
        for model in [Standard, Sparse, Linear] {
            records.extend(search(&lis(8), model, 1, &[(32, 0.3), (64, 0.5)]));
        }
        let analysis = analyse(records);
        let p = point(&analysis, "lis-8");
        for model in [Standard, Sparse, Linear] {
            assert_eq!(
                analysis.seed_min_dims(&p, model).unwrap(),
                vec![None],
                "{model:?}"
            );
            assert_eq!(analysis.min_dim(&p, model), None, "{model:?}");
        }
        assert!(analysis.compute.is_empty(), "{:?}", analysis.compute);
    }

    #[test]
    fn compute_is_the_mean_over_seeds_of_the_runs_at_each_seeds_minimum() {
        let at = |d, seed, flops, seconds, memory| {
            run(&lis(8), Standard, d)
                .seed(seed)
                .headline(0.95)
                .decode_flops(flops)
                .decode_seconds_per_token(seconds)
                .peak_memory(memory)
                .record()
        };
        let records = vec![
            at(32, 1, 100.0, 1e-6, 1000),
            // Passing runs above a seed's minimum are not what the model needs.
            at(128, 1, 1e9, 1.0, 1 << 30),
            run(&lis(8), Standard, 32)
                .seed(2)
                .headline(0.5)
                .decode_flops(1e9)
                .record(),
            at(64, 2, 300.0, 3e-6, 3000),
        ];
        let analysis = analyse(records);
        let row = compute(&analysis, "lis-8", Standard).expect("both seeds solved it");
        assert_eq!(row.min_dim, 48.0, "mean of 32 and 64");
        assert_eq!(
            row.decode_flops_per_token, 200.0,
            "mean of the runs at 32 (seed 1) and 64 (seed 2)"
        );
        assert!(
            (row.decode_seconds_per_token - 2e-6).abs() < 1e-15,
            "{row:?}"
        );
        assert_eq!(row.peak_memory_bytes, Some(2000.0));
        assert_eq!(row.parameters, (32.0 * 32.0 + 64.0 * 64.0) / 2.0);
        assert_eq!(row.length, point(&analysis, "lis-8").length);
    }

    #[test]
    fn peak_memory_is_shown_only_if_every_seed_measured_it() {
        let records = vec![
            run(&lis(8), Standard, 32)
                .headline(0.95)
                .peak_memory(1000)
                .record(),
            run(&lis(8), Standard, 32).seed(2).headline(0.95).record(),
        ];
        let row = analyse(records).compute[0].clone();
        assert_eq!(
            row.peak_memory_bytes, None,
            "a mean over one seed of two would mislead"
        );
    }

    #[test]
    fn ratios_are_to_the_standard_model_on_the_same_problem() {
        let records = vec![
            solved(&lis(8), Standard, 16, 100.0)
                .decode_seconds_per_token(1e-6)
                .record(),
            solved(&lis(8), Sparse, 32, 250.0)
                .decode_seconds_per_token(2e-6)
                .record(),
            solved(&lis(8), Linear, 16, 50.0).record(),
            // Another size, and another experiment (ordered first), with their own standard runs.
            solved(&lis(16), Standard, 16, 1000.0).record(),
            solved(&lis(16), Sparse, 16, 500.0).record(),
            solved(&lis(8), Standard, 16, 10.0)
                .experiment(Experiment::Locality)
                .record(),
        ];
        let analysis = analyse(records);
        let flops = |task, model| {
            let row = compute(&analysis, task, model).expect("solved");
            analysis.ratio_to_standard(row, |c| c.decode_flops_per_token)
        };
        assert_eq!(
            flops("lis-8", Standard),
            Some(1.0),
            "the standard model against itself"
        );
        assert_eq!(flops("lis-8", Sparse), Some(2.5));
        assert_eq!(flops("lis-8", Linear), Some(0.5));
        assert_eq!(
            flops("lis-16", Sparse),
            Some(0.5),
            "lis-16 is compared with lis-16's standard run"
        );
        let sparse = compute(&analysis, "lis-8", Sparse).unwrap();
        let time = analysis
            .ratio_to_standard(sparse, |c| c.decode_seconds_per_token)
            .unwrap();
        assert!((time - 2.0).abs() < 1e-9, "{time}");
    }

    #[test]
    fn without_a_solved_standard_model_there_is_no_ratio() {
        let mut records = search(&lis(8), Standard, 1, &[(32, 0.5), (64, 0.6)]);
        records.extend(search(&lis(8), Sparse, 1, &[(32, 0.95), (16, 0.5)]));
        let analysis = analyse(records);
        let sparse = compute(&analysis, "lis-8", Sparse).expect("the sparse model solved it");
        assert_eq!(
            analysis.ratio_to_standard(sparse, |c| c.decode_flops_per_token),
            None
        );
        assert!(compute(&analysis, "lis-8", Standard).is_none());
    }

    #[test]
    fn tied_models_both_get_the_shared_minimal_dimension() {
        let mut records = search(&lis(8), Standard, 1, &[(32, 0.95), (16, 0.5)]);
        records.extend(search(&lis(8), Linear, 1, &[(32, 0.93), (16, 0.4)]));
        let analysis = analyse(records);
        let p = point(&analysis, "lis-8");
        for model in [Standard, Linear] {
            assert_eq!(
                analysis.min_dim(&p, model).map(|s| s.mean),
                Some(32.0),
                "{model:?}"
            );
        }
        let linear = compute(&analysis, "lis-8", Linear).unwrap();
        assert_eq!(
            analysis.ratio_to_standard(linear, |c| c.decode_flops_per_token),
            Some(1.0),
            "same dimension, same default FLOPs"
        );
        assert_eq!(analysis.models(), vec![Standard, Linear]);
    }

    #[test]
    fn families_and_points_are_ordered_and_kept_apart_by_experiment() {
        let records = vec![
            run(&lis(16), Standard, 16).record(),
            run(&lis(8), Standard, 16).record(),
            run(&local_lis(8, 2), Sliding { window: 4 }, 16)
                .experiment(Experiment::Locality)
                .record(),
        ];
        let analysis = analyse(records);
        assert_eq!(
            analysis.families(),
            vec![
                (Experiment::General, "lis".into()),
                (Experiment::Locality, "lis-window2".into())
            ]
        );
        let lengths: Vec<usize> = analysis
            .points(Experiment::General, "lis")
            .iter()
            .map(|p| p.length)
            .collect();
        assert!(
            lengths.len() == 2 && lengths[0] < lengths[1],
            "by length: {lengths:?}"
        );
        assert!(analysis.points(Experiment::Locality, "lis").is_empty());
        assert_eq!(analysis.models_on(Experiment::General, "lis"), [Standard]);
        assert_eq!(
            analysis.models_on(Experiment::Locality, "lis-window2"),
            [Sliding { window: 4 }]
        );
        assert!(analysis.models_on(Experiment::Locality, "lis").is_empty());
        assert_eq!(analysis.runs().count(), 3);
        assert!(analysis
            .runs()
            .all(|(p, r)| p.experiment == r.key.experiment));
    }

    #[test]
    fn validation_decides_and_the_test_accuracy_is_shown() {
        // Seed 1: validation passes at 16 while the test split is below the threshold.
        // Seed 2: the test split passes at 16 while validation does not; 32 passes both.
        let records = vec![
            run(&lis(8), Standard, 16)
                .headline(0.85)
                .validation(0.92)
                .record(),
            run(&lis(8), Standard, 16)
                .seed(2)
                .headline(0.95)
                .validation(0.88)
                .record(),
            run(&lis(8), Standard, 32)
                .seed(2)
                .headline(0.97)
                .validation(0.96)
                .record(),
        ];
        let analysis = analyse(records);
        let p = point(&analysis, "lis-8");
        assert_eq!(
            analysis.seed_min_dims(&p, Standard).unwrap(),
            vec![Some(16), Some(32)],
            "validation passes seed 1 at 16 and fails seed 2 there"
        );
        assert_eq!(
            analysis.mean_accuracy(&p, Standard, 16),
            Some((0.85 + 0.95) / 2.0),
            "the accuracies shown are the test split's"
        );
    }

    #[test]
    fn without_a_validation_split_the_test_accuracy_decides() {
        let analysis = analyse(search(&lis(8), Standard, 1, &[(16, 0.95), (8, 0.5)]));
        let p = point(&analysis, "lis-8");
        assert_eq!(
            analysis.seed_min_dims(&p, Standard).unwrap(),
            vec![Some(16)]
        );
    }

    #[test]
    fn an_unsolved_pair_says_why_from_its_largest_runs() {
        let failing = |model, seed, endings: [Option<RunEnding>; 2]| {
            [16, 32].into_iter().zip(endings).map(move |(d, ending)| {
                let r = run(&lis(8), model, d).seed(seed).headline(0.5);
                match ending {
                    Some(e) => r.ending(e).record(),
                    None => r.record(),
                }
            })
        };
        let mut records: Vec<RunRecord> = Vec::new();
        // Standard: both seeds plateaued at 32 (the smaller run's ending does not matter).
        records.extend(failing(Standard, 1, [Some(OutOfBudget), Some(Plateaued)]));
        records.extend(failing(Standard, 2, [None, Some(Plateaued)]));
        // Sparse: one seed plateaued, the other ran out of budget.
        records.extend(failing(Sparse, 1, [None, Some(Plateaued)]));
        records.extend(failing(Sparse, 2, [None, Some(OutOfBudget)]));
        // Linear: one seed solved it, the other's ending was not recorded.
        records.push(
            run(&lis(8), Linear, 32)
                .headline(0.95)
                .ending(Passed)
                .record(),
        );
        records.extend(failing(Linear, 2, [None, None]));
        let analysis = analyse(records);
        let p = point(&analysis, "lis-8");
        assert_eq!(analysis.unsolved(&p, Standard), Some(Unsolved::Plateaued));
        assert_eq!(analysis.unsolved(&p, Sparse), Some(Unsolved::OutOfBudget));
        assert_eq!(analysis.unsolved(&p, Linear), Some(Unsolved::Unknown));
        assert_eq!(
            analysis.unsolved(&p, Sliding { window: 4 }),
            None,
            "not run"
        );
    }

    #[test]
    fn a_solved_pair_has_no_reason_to_be_unsolved() {
        let analysis = analyse(vec![solved(&lis(8), Standard, 16, 1.0).record()]);
        let p = point(&analysis, "lis-8");
        assert_eq!(analysis.unsolved(&p, Standard), None);
        assert_eq!(Unsolved::of(&[]), Unsolved::Unknown, "no failing seed");
        assert_eq!(Unsolved::of(&[Some(Passed)]), Unsolved::Unknown);
    }

    #[test]
    fn the_growth_exponent_of_a_power_law_is_its_power() {
        for (power, c) in [(0.5, 3.0), (1.0, 0.25), (0.0, 64.0), (2.0, 1.0)] {
            let points: Vec<(f64, f64)> = [11.0, 35.0, 83.0, 501.0]
                .iter()
                .map(|&l: &f64| (l, c * l.powf(power)))
                .collect();
            let b = growth_exponent(&points).expect("four sizes");
            assert!((b - power).abs() < 1e-9, "d = {c}·L^{power}: slope {b}");
        }
        // Least squares through a point off the line: between the two pairs' slopes.
        let b = growth_exponent(&[(10.0, 10.0), (100.0, 100.0), (1000.0, 100.0)]).unwrap();
        assert!(0.0 < b && b < 1.0, "{b}");
    }

    #[test]
    fn the_growth_exponent_needs_two_sizes_and_positive_values() {
        assert_eq!(growth_exponent(&[]), None);
        assert_eq!(growth_exponent(&[(10.0, 32.0)]), None, "one size");
        assert_eq!(
            growth_exponent(&[(10.0, 32.0), (10.0, 64.0)]),
            None,
            "one size twice"
        );
        assert_eq!(growth_exponent(&[(0.0, 32.0), (10.0, 64.0)]), None);
        assert_eq!(growth_exponent(&[(5.0, f64::NAN), (10.0, 64.0)]), None);
    }

    #[test]
    fn growth_is_fitted_per_seed_over_the_sizes_every_seed_solved() {
        // lis-n has L = 2n + 3: 11, 35 and 131 for n = 4, 16 and 64. Seed 1's dimension grows
        // fourfold from 11 to 35, seed 2's stays flat; seed 2 never solves n = 64.
        let mut records = Vec::new();
        for (n, d1, d2) in [(4, 16, 32), (16, 64, 32)] {
            records.push(run(&lis(n), Sparse, d1).headline(0.95).record());
            records.push(run(&lis(n), Sparse, d2).seed(2).headline(0.95).record());
        }
        records.extend(search(&lis(64), Sparse, 1, &[(64, 0.5), (128, 0.95)]));
        records.extend(search(&lis(64), Sparse, 2, &[(64, 0.5), (128, 0.6)]));
        records.push(solved(&lis(4), Standard, 16, 1.0).record());
        let analysis = analyse(records);
        let growth = analysis.growth();
        let sparse = growth
            .iter()
            .find(|g| g.model == Sparse)
            .expect("a sparse row");
        assert_eq!(
            (sparse.sizes, sparse.unsolved, sparse.unsolved_above),
            (3, 1, true),
            "{sparse:?}"
        );
        let slope = sparse.slope.expect("two solved sizes");
        let seed1 = (64f64 / 16.0).ln() / (35f64 / 11.0).ln();
        assert_eq!(slope.n, 2, "{slope:?}");
        assert!(
            (slope.max - seed1).abs() < 1e-9 && slope.min.abs() < 1e-9,
            "seed 1's own dims give {seed1}, seed 2's are flat: {slope:?}"
        );
        assert!((slope.mean - seed1 / 2.0).abs() < 1e-9, "{slope:?}");
        let standard = growth.iter().find(|g| g.model == Standard).unwrap();
        assert_eq!(
            (standard.sizes, standard.unsolved, standard.slope),
            (1, 0, None),
            "one size: no slope"
        );
    }

    #[test]
    fn an_unsolved_size_below_the_solved_ones_is_not_called_a_lower_bound() {
        let mut records = search(&lis(4), Linear, 1, &[(16, 0.5)]);
        records.push(solved(&lis(8), Linear, 16, 1.0).record());
        records.push(solved(&lis(16), Linear, 32, 1.0).record());
        let growth = analyse(records).growth();
        assert_eq!(
            (growth[0].unsolved, growth[0].unsolved_above),
            (1, false),
            "{growth:?}"
        );
        assert!(growth[0].slope.is_some());
    }
}
