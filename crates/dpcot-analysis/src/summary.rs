//! From run records to the experiment's answers: accuracy grids, minimal dimensions and the
//! compute each model spends at equal accuracy.

use std::collections::BTreeMap;

use dpcot_tasks::{DpTask, TaskSpec};
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
    /// The paper's problem size: the maximum sequence length.
    pub length: usize,
    /// The task's name with all its knobs (`lis-8-window2`), as in run ids.
    pub task: String,
}

impl Point {
    /// The problem a run was trained on; an error if its recorded task does not build (records
    /// read from a results directory were checked when read, so this is for hand-made ones).
    pub fn of(record: &RunRecord) -> Result<Self, AnalysisError> {
        let spec = &record.key.task;
        let task = spec.build()?;
        let (base, locality, knob) = match *spec {
            TaskSpec::Arithmetic { .. } => ("arithmetic", None, ""),
            TaskSpec::Lis { window, .. } => ("lis", window, "window"),
            TaskSpec::EditDistance { band, .. } => ("ed", band, "band"),
        };
        let family = match locality {
            None => base.to_string(),
            Some(m) => format!("{base}-{knob}{m}"),
        };
        Ok(Self {
            experiment: record.key.experiment,
            family,
            base,
            locality,
            length: task.max_len(),
            task: task.name(),
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
}

/// The minimal dimension of one seed: the smallest trained dimension whose headline accuracy
/// reaches the threshold, `None` if none did. Dimensions the search skipped are not assumed to
/// pass or fail.
fn seed_min_dim(passing_dims: &[usize]) -> Option<usize> {
    passing_dims.iter().copied().min()
}

/// The rule that turns several seeds into one minimal dimension: the spread of the seeds' own
/// minimal dimensions, or `None` if any seed reached the threshold at no trained dimension (a
/// problem counts as solved only if every seed solves it).
pub fn min_dim_over_seeds(per_seed: &[Option<usize>]) -> Option<Spread> {
    let dims: Option<Vec<f64>> = per_seed.iter().map(|m| m.map(|d| d as f64)).collect();
    Spread::of(&dims?)
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
    /// (point, model, dim) → headline accuracies over seeds.
    pub accuracy: BTreeMap<(Point, ModelChoice, usize), Vec<f64>>,
    /// (point, model) → minimal dimension per seed (`None`: no dimension run reached it).
    pub min_dims: BTreeMap<(Point, ModelChoice), Vec<Option<usize>>>,
    /// The cost of every (point, model) pair that every seed solved, by point and model.
    pub compute: Vec<ComputeAtAccuracy>,
    /// The records analysed, in the order given.
    pub records: Vec<RunRecord>,
    /// The point of each record, in the same order.
    points: Vec<Point>,
}

impl Analysis {
    /// Analyses `records`: a run solves its problem when its headline accuracy reaches
    /// `threshold`. An error if a record's task does not build.
    pub fn new(records: Vec<RunRecord>, threshold: f64) -> Result<Self, AnalysisError> {
        let points: Vec<Point> = records.iter().map(Point::of).collect::<Result<_, _>>()?;
        let mut accuracy: BTreeMap<_, Vec<f64>> = BTreeMap::new();
        // (point, model, seed) → passing dims.
        let mut passing: BTreeMap<(Point, ModelChoice, u64), Vec<usize>> = BTreeMap::new();
        for (point, record) in points.iter().zip(&records) {
            let key = &record.key;
            accuracy
                .entry((point.clone(), key.model, key.d_model))
                .or_default()
                .push(record.summary.eval.headline);
            let dims = passing
                .entry((point.clone(), key.model, key.seed))
                .or_default();
            if record.summary.eval.headline >= threshold {
                dims.push(key.d_model);
            }
        }
        let mut min_dims: BTreeMap<(Point, ModelChoice), Vec<Option<usize>>> = BTreeMap::new();
        for ((point, model, _seed), dims) in &passing {
            min_dims
                .entry((point.clone(), *model))
                .or_default()
                .push(seed_min_dim(dims));
        }

        let mut compute = Vec::new();
        for ((point, model), mins) in &min_dims {
            if mins.iter().any(Option::is_none) {
                continue;
            }
            let at_min: Vec<&RunRecord> = points
                .iter()
                .zip(&records)
                .filter(|(p, r)| r.key.model == *model && *p == point)
                .filter(|(_, r)| {
                    let seed_min = passing
                        .get(&(point.clone(), *model, r.key.seed))
                        .and_then(|dims| seed_min_dim(dims));
                    seed_min == Some(r.key.d_model)
                })
                .map(|(_, r)| r)
                .collect();
            if !at_min.is_empty() {
                compute.push(ComputeAtAccuracy::mean_of(point, *model, &at_min));
            }
        }
        Ok(Self {
            accuracy,
            min_dims,
            compute,
            records,
            points,
        })
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
            .accuracy
            .keys()
            .filter(|(p, _, _)| p.experiment == experiment && p.family == family)
            .map(|(p, _, _)| p.clone())
            .collect();
        points.sort_by_key(|p| p.length);
        points.dedup();
        points
    }

    /// The models present, in order.
    pub fn models(&self) -> Vec<ModelChoice> {
        let mut models: Vec<ModelChoice> = self.accuracy.keys().map(|(_, m, _)| *m).collect();
        models.sort();
        models.dedup();
        models
    }

    /// The dimensions trained for any point of a family, ascending.
    pub fn dims(&self, experiment: Experiment, family: &str) -> Vec<usize> {
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

    /// Minimal dimension of (point, model) by [`min_dim_over_seeds`]: `None` if it was not run
    /// or some seed never reached the threshold.
    pub fn min_dim(&self, point: &Point, model: ModelChoice) -> Option<Spread> {
        min_dim_over_seeds(self.min_dims.get(&(point.clone(), model))?)
    }

    /// `value` of a compute row relative to the standard model's on the same problem (same
    /// experiment and task); `None` if the standard model did not solve it.
    pub fn ratio_to_standard(
        &self,
        row: &ComputeAtAccuracy,
        value: impl Fn(&ComputeAtAccuracy) -> f64,
    ) -> Option<f64> {
        let standard = self.compute.iter().find(|c| {
            c.experiment == row.experiment
                && c.task == row.task
                && c.model == ModelChoice::Standard.name()
        })?;
        Some(value(row) / value(standard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{lis, local_lis, run, search, solved};
    use crate::profile::ModelChoice::{Linear, Sliding, Sparse, Standard};

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
        let task = lis(8).build().unwrap();
        assert_eq!(
            general.length,
            task.max_len(),
            "the size is the maximum sequence length"
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
        assert_eq!(analysis.min_dims[&(p.clone(), Standard)], vec![Some(32)]);
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
            analysis.min_dims[&(p.clone(), Sparse)],
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
                analysis.min_dims[&(p.clone(), model)],
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
        assert_eq!(analysis.runs().count(), 3);
        assert!(analysis
            .runs()
            .all(|(p, r)| p.experiment == r.key.experiment));
    }
}
