//! `report.md`, its CSV tables and figures, from the records of a results directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dpcot_model::dpcot_attention::AttentionKind;
use dpcot_train::RunEnding;

use crate::plots;
use crate::profile::{Experiment, ModelChoice, Profile};
use crate::results::{write_atomic, Results, RunRecord};
use crate::summary::{
    length_meaning, Analysis, ComputeAtAccuracy, Growth, Point, Spread, Unsolved,
};
use crate::AnalysisError;

/// The paper's finding per experiment, stated next to ours.
const PAPER_CLAIM: &str = "The paper (Yang et al., ICML 2024, Figure 1) finds that the standard \
Transformer solves Arithmetic, LIS and ED with a dimension that stays flat as the problem size \
grows, while the Sparse and Linear Transformers need a dimension that grows with it (theory: \
≈ √L), so that their per-token cost ends up no lower than the standard model's.";

/// The paper's positive result, which the locality experiment tests.
const LOCALITY_CLAIM: &str = "The paper's positive result: when every DP step reads only the \
last m steps (m-locality), sparse and linear Transformers no longer need a dimension that grows \
with the problem size, so their lower per-token cost becomes a real saving. Here the local \
variants (windowed LIS, banded ED; docs/locality.md) are swept over the size at fixed m and \
over m at a fixed size, beside the general task of the same kind.";

const MODERN_CLAIM: &str = "Beyond the paper: do today's efficient models escape its result? \
Gated linear attention (GLA), DeltaNet and a Mamba-style selective state-space layer take \
attention's place in the same decoder (docs/attention.md), on the same tasks and grid as the \
paper's models; each table puts their minimal dimension beside the paper's models' on the same \
problem (from the general or the locality experiment), and the compute table adds the bytes of \
state each model carries from one generated token to the next.";

/// The locality experiment's own figures: each local family against its general task, and the
/// minimal dimension against m wherever one size was run at several m.
fn locality_figures(
    md: &mut String,
    analysis: &Analysis,
    figures_dir: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let mut figures = Vec::new();
    let points = analysis.all_points();
    let mut local_families: Vec<&str> = points
        .iter()
        .filter(|p| p.experiment == Experiment::Locality && p.locality.is_some())
        .map(|p| p.family.as_str())
        .collect();
    local_families.dedup();
    if !local_families.is_empty() {
        writeln!(md, "### Local against general\n").unwrap();
    }
    for family in local_families {
        let stem = figures_dir.join(format!("locality-{family}-vs-general"));
        figures.extend(plots::local_vs_general(analysis, family, &stem)?);
        writeln!(
            md,
            "![{family} against the general task](figures/locality-{family}-vs-general.png)\n"
        )
        .unwrap();
    }
    let mut sizes: Vec<(&str, usize)> = points
        .iter()
        .filter(|p| p.experiment == Experiment::Locality && p.locality.is_some())
        .map(|p| (p.base, p.length))
        .collect();
    sizes.sort();
    sizes.dedup();
    for (base, length) in sizes {
        let knobs = points
            .iter()
            .filter(|p| {
                p.experiment == Experiment::Locality
                    && p.base == base
                    && p.length == length
                    && p.locality.is_some()
            })
            .count();
        if knobs < 2 {
            continue;
        }
        let stem = figures_dir.join(format!("locality-{base}-L{length}-vs-m"));
        figures.extend(plots::min_dim_vs_locality(analysis, base, length, &stem)?);
        writeln!(
            md,
            "![{base} at L = {length} against m](figures/locality-{base}-L{length}-vs-m.png)\n"
        )
        .unwrap();
    }
    Ok(figures)
}

/// What `write_report` produced.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `report.md`.
    pub report: PathBuf,
    /// Every figure, PNG and SVG.
    pub figures: Vec<PathBuf>,
    /// The CSV tables.
    pub tables: Vec<PathBuf>,
}

/// Writes `report.md`, `tables/*.csv` and `figures/*.{png,svg}` into `out` from the records of
/// every results directory given (shards of one sweep merge by listing them all).
pub fn write_report(
    profile: &Profile,
    results: &[Results],
    out: &Path,
) -> Result<ReportFiles, AnalysisError> {
    let mut records: Vec<RunRecord> = Vec::new();
    for r in results {
        for record in r.load_records()? {
            // A shard's records are disjoint from another's; the same id twice is one run.
            if !records.iter().any(|x| x.key == record.key) {
                records.push(record);
            }
        }
    }
    let analysis = Analysis::new(records, profile.threshold)?;
    let figures_dir = out.join("figures");
    let tables_dir = out.join("tables");
    let mut figures = Vec::new();
    let mut tables = Vec::new();
    let mut md = String::new();

    writeln!(md, "# dpcot report: profile `{}`\n", profile.name).unwrap();
    setup_section(&mut md, profile, &analysis);

    for experiment in experiments(&analysis) {
        let title = match experiment.as_str() {
            "general" => "General DP tasks (the paper's Figure 1)",
            "locality" => "Local DP tasks (m-locality)",
            "modern" => "Beyond the paper: GLA, DeltaNet and Mamba",
            other => other,
        };
        writeln!(md, "## {title}\n").unwrap();
        if experiment == Experiment::General {
            writeln!(md, "{PAPER_CLAIM}\n").unwrap();
        }
        if experiment == Experiment::Locality {
            writeln!(md, "{LOCALITY_CLAIM}\n").unwrap();
        }
        if experiment == Experiment::Modern {
            writeln!(md, "{MODERN_CLAIM}\n").unwrap();
        }
        for (_, family) in analysis
            .families()
            .into_iter()
            .filter(|(e, _)| *e == experiment)
        {
            writeln!(md, "### {family}\n").unwrap();
            let stem = figures_dir.join(format!("{experiment}-{family}-heatmap"));
            let grid = grid_dims(profile, experiment, &family);
            figures.extend(plots::heatmap(
                &analysis, experiment, &family, &grid, &stem,
            )?);
            writeln!(
                md,
                "![accuracy heatmap](figures/{experiment}-{family}-heatmap.png)\n"
            )
            .unwrap();
            min_dim_table(&mut md, &analysis, experiment, &family, profile);
            let stem = figures_dir.join(format!("{experiment}-{family}-min-dim"));
            figures.extend(plots::min_dim_curve(&analysis, experiment, &family, &stem)?);
            writeln!(
                md,
                "![minimal dimension against L](figures/{experiment}-{family}-min-dim.png)\n"
            )
            .unwrap();
        }
        if experiment == Experiment::Locality {
            figures.extend(locality_figures(&mut md, &analysis, &figures_dir)?);
        }
        growth_section(&mut md, &analysis, experiment);
        endings_section(&mut md, &analysis, experiment);
        writeln!(md, "### Compute at equal accuracy\n").unwrap();
        compute_section(&mut md, &analysis, experiment);
        let stem = figures_dir.join(format!("{experiment}-compute-ratios"));
        figures.extend(plots::compute_ratios(&analysis, experiment, &stem)?);
        writeln!(
            md,
            "![compute ratios](figures/{experiment}-compute-ratios.png)\n"
        )
        .unwrap();
        failure_section(&mut md, &analysis, experiment, profile.threshold);
    }
    run_times(&mut md, &analysis);

    tables.push(write_csv(
        &tables_dir.join("runs.csv"),
        &runs_csv(&analysis),
    )?);
    tables.push(write_csv(
        &tables_dir.join("min_dims.csv"),
        &min_dims_csv(&analysis),
    )?);
    tables.push(write_csv(
        &tables_dir.join("compute.csv"),
        &compute_csv(&analysis),
    )?);
    tables.push(write_csv(
        &tables_dir.join("growth.csv"),
        &growth_csv(&analysis),
    )?);
    writeln!(
        md,
        "Tables: `tables/runs.csv` (every run), `tables/min_dims.csv`, `tables/compute.csv`, \
         `tables/growth.csv`."
    )
    .unwrap();

    let report = out.join("report.md");
    write_atomic(&report, md.as_bytes())?;
    Ok(ReportFiles {
        report,
        figures,
        tables,
    })
}

/// The profile's dimension grid for a task family (`lis-window2` belongs to the `lis` sweeps).
fn grid_dims(profile: &Profile, experiment: Experiment, family: &str) -> Vec<usize> {
    let mut dims: Vec<usize> = profile
        .sweeps
        .iter()
        .filter(|s| s.experiment == experiment && family.split('-').next() == Some(s.task.as_str()))
        .flat_map(|s| s.dims.iter().copied())
        .collect();
    dims.sort_unstable();
    dims.dedup();
    dims
}

fn experiments(analysis: &Analysis) -> Vec<Experiment> {
    let mut e: Vec<Experiment> = analysis.families().into_iter().map(|(e, _)| e).collect();
    e.dedup();
    e
}

fn setup_section(md: &mut String, profile: &Profile, analysis: &Analysis) {
    let t = profile.train.config();
    let model = profile.model_template();
    let backend = analysis
        .records
        .first()
        .map(|r| r.summary.backend.to_string())
        .unwrap_or_else(|| "-".into());
    writeln!(
        md,
        "Setup: {} layers, {} heads, dropout {}; {} of batch {} (AdamW, lr {}), \
         stopping early once the validation accuracy reaches {:.0}%; {} per run; seeds {:?}; \
         backend `{backend}`.{}\n\n\
         A run *passes* when its validation accuracy reaches {:.0}%: the headline metric (the \
         paper's: final-answer accuracy for arithmetic, teacher-forced exact match for LIS and \
         ED) on a validation split disjoint from the test split. Every accuracy shown is the \
         test split's. A run that fails has *plateaued* when its validation accuracy stopped \
         improving (evidence that the model lacks the capacity, at this training recipe), or \
         ran *out of budget* when its steps ran out while it was still improving (no evidence \
         either way). A seed's minimal dimension is the smallest searched dimension whose run \
         passes; a problem counts as solved by a model only if every seed solves it, and its \
         minimal dimension is the mean of the seeds' minima, with their range (min–max) where \
         they disagree; the figures draw that range as error bars. L, the problem size, is \
         {}. The minimal dimension is searched by bisection over the grid (each search starting \
         from the answer for the next smaller size), so heatmap cells marked – were not \
         trained. {} runs. {}\n",
        model.n_layers,
        model.n_heads,
        model.dropout,
        budget(&t),
        t.batch_size,
        t.learning_rate,
        100.0 * profile.threshold,
        profile.data.describe(),
        profile.seeds,
        sweep_budgets(profile),
        100.0 * profile.threshold,
        length_meaning().replace("<eos>", "`<eos>`"),
        analysis.records.len(),
        sparse_pattern(profile)
    )
    .unwrap();
}

/// A training budget in words: "1000 steps, continued while improving up to 2000".
fn budget(t: &dpcot_train::TrainConfig) -> String {
    if t.step_cap() > t.steps {
        format!(
            "{} steps, continued {} steps at a time while still improving up to {},",
            t.steps,
            t.extension(),
            t.step_cap()
        )
    } else {
        format!("up to {} steps", t.steps)
    }
}

/// The sweeps that train on budgets of their own, for the report's setup line.
fn sweep_budgets(profile: &Profile) -> String {
    profile
        .sweeps
        .iter()
        .filter(|s| s.train != Default::default())
        .map(|s| {
            let t = s.train.or(&profile.train).config();
            let budget = budget(&t);
            format!(
                " The {} {} sweep trains {}.",
                s.experiment,
                s.task,
                budget.trim_end_matches(',')
            )
        })
        .collect()
}

/// How the Sparse Transformer's pattern was set, for the report's setup line.
fn sparse_pattern(profile: &Profile) -> String {
    let block = match profile.model.sparse_block_size {
        Some(b) => format!("blocks of {b}"),
        None => "blocks of ⌈√L⌉".to_string(),
    };
    let width = profile
        .model
        .sparse_summary_width
        .unwrap_or(AttentionKind::DEFAULT_SUMMARY_WIDTH);
    format!(
        "Sparse Transformer: Child et al.'s fixed pattern, {block}, {width} summary position{} per block.",
        if width == 1 { "" } else { "s" }
    )
}

fn min_dim_table(
    md: &mut String,
    analysis: &Analysis,
    experiment: Experiment,
    family: &str,
    profile: &Profile,
) {
    let points = analysis.points(experiment, family);
    let largest = analysis
        .dims(experiment, family)
        .last()
        .copied()
        .unwrap_or(0);
    write!(md, "| model |").unwrap();
    for p in &points {
        write!(md, " L = {} (`{}`) |", p.length, p.task).unwrap();
    }
    writeln!(md, "\n|---|{}", "---|".repeat(points.len())).unwrap();
    // A modern table starts with the paper's models on the same problems.
    let mut rows: Vec<(ModelChoice, Vec<Point>)> = Vec::new();
    if experiment == Experiment::Modern {
        let counterparts: Vec<Point> = points.iter().map(Point::paper_counterpart).collect();
        rows.extend(
            analysis
                .models()
                .into_iter()
                .map(|m| (m, counterparts.clone())),
        );
    }
    rows.extend(analysis.models().into_iter().map(|m| (m, points.clone())));
    for (model, points) in rows {
        let cells: Vec<String> = points
            .iter()
            .map(|p| match analysis.min_dim(p, model) {
                Some(s) if s.varies() => format!(" {:.0} ({:.0}–{:.0}) |", s.mean, s.min, s.max),
                Some(s) => format!(" {:.0} |", s.mean),
                None => match analysis.unsolved(p, model).map(Unsolved::tag) {
                    Some(Some(tag)) => format!(" > {largest} ({tag}) |"),
                    Some(None) => format!(" > {largest} |"),
                    None => " – |".to_string(),
                },
            })
            .collect();
        // A table lists only the models run on its problems (a results directory with several
        // experiments holds models that others have no row for).
        if cells.iter().all(|c| c == " – |") {
            continue;
        }
        write!(md, "| {} |", model.name()).unwrap();
        cells.iter().for_each(|c| md.push_str(c));
        md.push('\n');
    }
    writeln!(
        md,
        "\nMinimal embedding dimension reaching {:.0}% on validation (mean and range over seeds; \
         `> d`: no searched dimension did for some seed; `(plateau)`: every such seed's run at \
         its largest dimension plateaued; `(budget)`: at least one ran out of steps while still \
         improving).\n",
        100.0 * profile.threshold
    )
    .unwrap();
}

/// The exponent of each model's minimal-dimension growth with L, beside the standard model's
/// and √L's.
fn growth_section(md: &mut String, analysis: &Analysis, experiment: Experiment) {
    let all = analysis.growth();
    let rows: Vec<&Growth> = all.iter().filter(|g| g.experiment == experiment).collect();
    // The standard model's slope on the same family: a modern model's is the paper's run's.
    let standard_slope = |family: &str| {
        all.iter()
            .filter(|s| s.family == family && s.model == ModelChoice::Standard)
            .find(|s| s.experiment == experiment || experiment == Experiment::Modern)
            .and_then(|s| s.slope)
    };
    writeln!(
        md,
        "### Growth of the minimal dimension\n\n\
         The slope b of log(minimal dimension) = a + b·log L, fitted by least squares for each \
         seed on its own minimal dimensions over the sizes every seed solved (mean, and range \
         over seeds). b = 0 is a dimension that stays flat, as the paper finds for the standard \
         Transformer; b = 0.5 is √L growth, the paper's bound for the sparse and linear ones. \
         With few sizes, read b as a direction rather than a measurement.\n\n\
         | family | model | sizes solved | slope b | standard's b | √L reference |\n\
         |---|---|---|---|---|---|"
    )
    .unwrap();
    for g in &rows {
        let standard = standard_slope(&g.family);
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | 0.5 |",
            g.family,
            g.model.name(),
            sizes_solved(g),
            slope_cell(g.slope.as_ref()),
            slope_cell(standard.as_ref()),
        )
        .unwrap();
    }
    md.push('\n');
}

/// `3 of 4`, with what the unsolved sizes mean for the slope.
fn sizes_solved(g: &Growth) -> String {
    let solved = format!("{} of {}", g.sizes - g.unsolved, g.sizes);
    match g.unsolved {
        0 => solved,
        n if g.unsolved_above => format!("{solved} ({n} unsolved: slope is a lower bound)"),
        n => format!("{solved} ({n} unsolved, left out)"),
    }
}

/// A slope as `0.48 (0.31–0.62)`, or `0.48` when the seeds agree; `–` without one.
fn slope_cell(slope: Option<&Spread>) -> String {
    match slope {
        Some(s) if s.varies() => format!("{:.2} ({:.2}–{:.2})", s.mean, s.min, s.max),
        Some(s) => format!("{:.2}", s.mean),
        None => Table::Markdown.missing().to_string(),
    }
}

/// How the experiment's runs ended, by model.
fn endings_section(md: &mut String, analysis: &Analysis, experiment: Experiment) {
    let endings = [
        Some(RunEnding::Passed),
        Some(RunEnding::Plateaued),
        Some(RunEnding::OutOfBudget),
        None,
    ];
    let mut counts: BTreeMap<ModelChoice, [usize; 4]> = BTreeMap::new();
    for (_, r) in analysis.runs().filter(|(p, _)| p.experiment == experiment) {
        let row = counts.entry(r.key.model).or_default();
        if let Some(i) = endings.iter().position(|e| *e == r.summary.ending) {
            row[i] += 1;
        }
    }
    writeln!(
        md,
        "### How the runs ended\n\n\
         | model | passed | plateaued | out of budget | not recorded |\n|---|---|---|---|---|"
    )
    .unwrap();
    for (model, [passed, plateaued, budget, unknown]) in &counts {
        writeln!(
            md,
            "| {} | {passed} | {plateaued} | {budget} | {unknown} |",
            model.name()
        )
        .unwrap();
    }
    md.push('\n');
}

fn compute_section(md: &mut String, analysis: &Analysis, experiment: Experiment) {
    let rows: Vec<&ComputeAtAccuracy> = analysis
        .compute
        .iter()
        .filter(|c| c.experiment == experiment)
        .collect();
    if rows.is_empty() {
        writeln!(
            md,
            "No model reached the threshold, so there is no compute to compare.\n"
        )
        .unwrap();
        return;
    }
    writeln!(
        md,
        "Each model at its own minimal dimension (so all are equally accurate). Ratios are to the \
         standard model on the same problem.\n\n\
         | task | L | model | dim | params | FLOPs/token | ratio | decode µs/token | ratio | state KiB | peak MiB | train FLOPs | train s | steps |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    .unwrap();
    for c in &rows {
        let [flops_ratio, time_ratio] = ratio_cells(analysis, c, Table::Markdown);
        writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.0} | {:.3e} | {} | {:.1} | {} | {:.1} | {} | {:.2e} | {:.1} | {:.0} |",
            c.task,
            c.length,
            c.model,
            c.min_dim,
            c.parameters,
            c.decode_flops_per_token,
            flops_ratio,
            1e6 * c.decode_seconds_per_token,
            time_ratio,
            c.state_bytes / 1024.0,
            c.peak_memory_bytes.map(|b| format!("{:.0}", b / (1 << 20) as f64)).unwrap_or_else(|| Table::Markdown.missing().into()),
            c.train_flops,
            c.train_seconds,
            c.train_steps
        )
        .unwrap();
    }
    md.push('\n');
    md.push_str(&verdict(analysis, experiment, &rows));
    md.push('\n');
}

/// The plain answer to the paper's question on this evidence: `rows` are the experiment's
/// compute rows.
fn verdict(analysis: &Analysis, experiment: Experiment, rows: &[&ComputeAtAccuracy]) -> String {
    let mut saved = Vec::new();
    let mut not_saved = Vec::new();
    for c in rows.iter().filter(|c| c.model != "standard") {
        if let Some(r) = analysis.ratio_to_standard(c, |c| c.decode_flops_per_token) {
            let entry = format!("{} on `{}` ({r:.2}×)", c.model, c.task);
            if r < 1.0 {
                saved.push(entry);
            } else {
                not_saved.push(entry);
            }
        }
    }
    let mut text = String::from("**Verdict on this evidence.** ");
    if saved.is_empty() && not_saved.is_empty() {
        text.push_str("No efficient model and the standard model both reached the threshold on the same problem, so no comparison at equal accuracy is possible.");
    } else {
        write!(
            text,
            "At equal accuracy, an efficient model spends fewer FLOPs per generated token than the standard one in {} of {} comparisons{}; \
             it spends as many or more in {}{}.",
            saved.len(),
            saved.len() + not_saved.len(),
            if saved.is_empty() { String::new() } else { format!(" ({})", saved.join(", ")) },
            not_saved.len(),
            if not_saved.is_empty() { String::new() } else { format!(" ({})", not_saved.join(", ")) },
        )
        .unwrap();
    }
    text.push_str(&failures_where_standard_solved(analysis, experiment));
    text.push_str(" The measured decode times per token are in the table; at these small lengths fixed per-step costs weigh more than the attention's share.\n");
    text
}

/// The verdict's account of efficient models that failed a problem of `experiment` which the
/// standard model solved: only plateaued failures are evidence of missing capacity.
fn failures_where_standard_solved(analysis: &Analysis, experiment: Experiment) -> String {
    let reasons: Vec<Unsolved> = analysis
        .searches
        .keys()
        .filter(|(p, m)| {
            p.experiment == experiment
                && *m != ModelChoice::Standard
                && analysis.min_dim(p, ModelChoice::Standard).is_some()
        })
        .filter_map(|(p, m)| analysis.unsolved(p, *m))
        .collect();
    let count = |reason| reasons.iter().filter(|r| **r == reason).count();
    let cases = |n: usize| format!("{n} further case{}", if n == 1 { "" } else { "s" });
    let mut text = String::new();
    let plateaued = count(Unsolved::Plateaued);
    if plateaued > 0 {
        write!(text, " In {} an efficient model plateaued below the threshold at every searched dimension where the standard model solved the problem: evidence that it lacks the capacity.", cases(plateaued)).unwrap();
    }
    let budget = count(Unsolved::OutOfBudget);
    if budget > 0 {
        write!(text, " In {} an efficient model ran out of steps while still improving where the standard model solved the problem: no evidence either way.", cases(budget)).unwrap();
    }
    let unknown = count(Unsolved::Unknown);
    if unknown > 0 {
        write!(text, " In {} an efficient model reached the threshold at no searched dimension while the standard model did, but how its runs ended was not recorded: not counted either way.", cases(unknown)).unwrap();
    }
    text
}

fn failure_section(md: &mut String, analysis: &Analysis, experiment: Experiment, threshold: f64) {
    writeln!(
        md,
        "### Where chains go wrong\n\n\
         For every run below the threshold on validation: how it ended, the first wrong step of \
         its free-generation chains on the test split (step index / steps of a right chain, \
         averaged over the wrong chains) and how they go wrong.\n\n\
         | run | validation | test | ending | chains right | mean first wrong step (relative) | kinds |\n|---|---|---|---|---|---|---|"
    )
    .unwrap();
    let mut any = false;
    for r in analysis
        .records
        .iter()
        .filter(|r| r.key.experiment == experiment && r.summary.decision_accuracy() < threshold)
    {
        let e = &r.summary.eval;
        let wrong: usize = e.first_wrong_step.iter().sum();
        let steps = e.first_wrong_step.len().max(1) as f64;
        let mean = e
            .first_wrong_step
            .iter()
            .enumerate()
            .map(|(i, &n)| i as f64 * n as f64)
            .sum::<f64>()
            / wrong.max(1) as f64;
        writeln!(
            md,
            "| `{}` | {} | {:.1}% | {} | {:.1}% | {:.2} | {} |",
            r.key.id(),
            r.summary
                .validation
                .as_ref()
                .map(|v| format!("{:.1}%", 100.0 * v.headline))
                .unwrap_or_else(|| Table::Markdown.missing().into()),
            100.0 * e.headline,
            ending_name(r, Table::Markdown),
            100.0 * e.chain_accuracy,
            mean / steps,
            e.first_wrong_kinds_text()
        )
        .unwrap();
        any = true;
    }
    if !any {
        writeln!(md, "| (every run reached the threshold) | | | | | | |").unwrap();
    }
    md.push('\n');
}

fn run_times(md: &mut String, analysis: &Analysis) {
    let total: f64 = analysis.records.iter().map(|r| r.wall_seconds).sum();
    let train: f64 = analysis
        .records
        .iter()
        .map(|r| r.summary.train_seconds)
        .sum();
    writeln!(
        md,
        "## Run times\n\n{} runs, {:.1} minutes of run processes in all ({:.1} of them training steps; the rest is data generation, evaluation and start-up).\n",
        analysis.records.len(),
        total / 60.0,
        train / 60.0
    )
    .unwrap();
}

fn runs_csv(analysis: &Analysis) -> String {
    let mut csv = String::from("id,experiment,task,length,model,d_model,seed,headline,validation,ending,answer_accuracy,chain_accuracy,teacher_forced_accuracy,steps,train_seconds,train_flops,decode_flops_per_token,decode_seconds_per_token,wall_seconds\n");
    for (p, r) in analysis.runs() {
        let e = &r.summary.eval;
        let validation = r
            .summary
            .validation
            .as_ref()
            .map(|v| format!("{:.4}", v.headline));
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{:.4},{},{},{:.4},{:.4},{:.4},{},{:.2},{:.4e},{:.4e},{:.4e},{:.2}",
            r.key.id(),
            r.key.experiment,
            p.task,
            p.length,
            r.key.model.name(),
            r.key.d_model,
            r.key.seed,
            e.headline,
            validation.unwrap_or_default(),
            ending_name(r, Table::Csv),
            e.answer_accuracy,
            e.chain_accuracy,
            e.teacher_forced_accuracy,
            r.summary.steps,
            r.summary.train_seconds,
            r.summary.train_flops,
            r.summary.decode_flops_per_token,
            r.decode_seconds_per_token(),
            r.wall_seconds
        )
        .unwrap();
    }
    csv
}

fn min_dims_csv(analysis: &Analysis) -> String {
    let mut csv = String::from(
        "experiment,task,length,model,min_dim_mean,min_dim_min,min_dim_max,seeds,unsolved\n",
    );
    for ((p, m), seeds) in &analysis.searches {
        let s = analysis.min_dim(p, *m);
        let unsolved = analysis.unsolved(p, *m).map(Unsolved::as_str);
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            p.experiment,
            p.task,
            p.length,
            m.name(),
            s.map(|s| format!("{:.1}", s.mean)).unwrap_or_default(),
            s.map(|s| s.min.to_string()).unwrap_or_default(),
            s.map(|s| s.max.to_string()).unwrap_or_default(),
            seeds.len(),
            unsolved.unwrap_or_default()
        )
        .unwrap();
    }
    csv
}

fn compute_csv(analysis: &Analysis) -> String {
    let mut csv = String::from("experiment,task,length,model,min_dim,parameters,decode_flops_per_token,flops_ratio,decode_seconds_per_token,time_ratio,state_bytes,peak_memory_bytes,train_flops,train_seconds,train_steps\n");
    for c in &analysis.compute {
        let [flops_ratio, time_ratio] = ratio_cells(analysis, c, Table::Csv);
        writeln!(
            csv,
            "{},{},{},{},{},{},{:.4e},{},{:.4e},{},{:.0},{},{:.4e},{:.2},{}",
            c.experiment,
            c.task,
            c.length,
            c.model,
            c.min_dim,
            c.parameters,
            c.decode_flops_per_token,
            flops_ratio,
            c.decode_seconds_per_token,
            time_ratio,
            c.state_bytes,
            c.peak_memory_bytes
                .map(|b| format!("{b:.0}"))
                .unwrap_or_else(|| Table::Csv.missing().into()),
            c.train_flops,
            c.train_seconds,
            c.train_steps
        )
        .unwrap();
    }
    csv
}

fn growth_csv(analysis: &Analysis) -> String {
    let mut csv = String::from("experiment,family,model,sizes,unsolved,unsolved_above,seeds_fitted,slope_mean,slope_min,slope_max\n");
    for g in analysis.growth() {
        let slope = |f: fn(&Spread) -> f64| g.slope.as_ref().map(|s| format!("{:.4}", f(s)));
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{}",
            g.experiment,
            g.family,
            g.model.name(),
            g.sizes,
            g.unsolved,
            g.unsolved_above,
            g.slope.map_or(0, |s| s.n),
            slope(|s| s.mean).unwrap_or_default(),
            slope(|s| s.min).unwrap_or_default(),
            slope(|s| s.max).unwrap_or_default(),
        )
        .unwrap();
    }
    csv
}

/// How a run ended, as `table` writes it (missing for runs from before endings were recorded).
fn ending_name(record: &RunRecord, table: Table) -> &'static str {
    record
        .summary
        .ending
        .map_or(table.missing(), RunEnding::as_str)
}

/// The two tables that show compute: `report.md`'s, for people, and `compute.csv`, for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Markdown,
    Csv,
}

impl Table {
    /// A value that is not there: a dash people can see, an empty CSV field.
    fn missing(self) -> &'static str {
        match self {
            Table::Markdown => "–",
            Table::Csv => "",
        }
    }
}

/// A compute row's FLOPs per token and decode time per token relative to the standard model on
/// the same problem, as `table` writes them (`2.50×`, or `2.5000` in CSV; missing where the
/// standard model did not solve the problem).
fn ratio_cells(analysis: &Analysis, row: &ComputeAtAccuracy, table: Table) -> [String; 2] {
    let values: [fn(&ComputeAtAccuracy) -> f64; 2] =
        [|c| c.decode_flops_per_token, |c| c.decode_seconds_per_token];
    values.map(|value| match analysis.ratio_to_standard(row, value) {
        Some(r) if table == Table::Markdown => format!("{r:.2}×"),
        Some(r) => format!("{r:.4}"),
        None => table.missing().to_string(),
    })
}

fn write_csv(path: &Path, text: &str) -> Result<PathBuf, AnalysisError> {
    write_atomic(path, text.as_bytes())?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{lis, local_lis, run, search, solved};
    use crate::profile::ModelChoice::{Linear, Sliding, Sparse, Standard};
    use dpcot_train::RunEnding::{OutOfBudget, Passed, Plateaued};

    const THRESHOLD: f64 = 0.9;

    fn analyse(records: Vec<RunRecord>) -> Analysis {
        Analysis::new(records, THRESHOLD).expect("fixture records are valid")
    }

    /// The compute section of the `general` experiment, verdict included.
    fn compute_text(records: Vec<RunRecord>) -> String {
        let mut md = String::new();
        compute_section(&mut md, &analyse(records), Experiment::General);
        md
    }

    fn smoke_profile() -> Profile {
        let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/profiles/smoke.toml");
        Profile::load(&smoke).expect("the smoke profile loads")
    }

    /// Asserts that the general LIS minimal-dimension table of `records` has `rows`; returns
    /// the analysis.
    fn assert_lis_table_rows(records: Vec<RunRecord>, rows: &[&str]) -> Analysis {
        let analysis = analyse(records);
        let mut md = String::new();
        min_dim_table(
            &mut md,
            &analysis,
            Experiment::General,
            "lis",
            &smoke_profile(),
        );
        for row in rows {
            assert!(md.contains(row), "`{row}` in\n{md}");
        }
        analysis
    }

    fn unsolved(model: ModelChoice) -> Vec<RunRecord> {
        search(&lis(8), model, 1, &[(32, 0.4), (64, 0.6)])
    }

    #[test]
    fn the_verdict_counts_comparisons_that_save_and_that_do_not() {
        let text = compute_text(vec![
            solved(&lis(8), Standard, 32, 1000.0).record(),
            solved(&lis(8), Sparse, 32, 500.0).record(),
            solved(&lis(8), Linear, 64, 4000.0).record(),
        ]);
        assert!(
            text.contains("fewer FLOPs per generated token than the standard one in 1 of 2 comparisons (sparse on `lis-8` (0.50×))"),
            "{text}"
        );
        assert!(
            text.contains("as many or more in 1 (linear on `lis-8` (4.00×))."),
            "{text}"
        );
        assert!(
            !text.contains("further case"),
            "every model solved it: {text}"
        );
    }

    #[test]
    fn a_tie_at_the_same_dimension_saves_nothing() {
        let text = compute_text(vec![
            solved(&lis(8), Standard, 32, 1000.0).record(),
            solved(&lis(8), Linear, 32, 1000.0).record(),
        ]);
        assert!(
            text.contains("in 0 of 1 comparisons; it spends as many or more in 1 (linear on `lis-8` (1.00×))."),
            "equal cost is not a saving: {text}"
        );
    }

    #[test]
    fn when_only_the_standard_model_passes_the_verdict_says_so() {
        let mut records = vec![solved(&lis(8), Standard, 32, 1000.0).record()];
        records.extend(unsolved(Sparse));
        records.extend(unsolved(Linear));
        let text = compute_text(records);
        assert!(
            text.contains("so no comparison at equal accuracy is possible."),
            "{text}"
        );
        assert!(
            text.contains("In 2 further cases an efficient model reached the threshold at no searched dimension while the standard model did, but how its runs ended was not recorded: not counted either way."),
            "{text}"
        );
    }

    #[test]
    fn only_plateaued_failures_count_as_missing_capacity() {
        let failing = |model, ending| {
            search(&lis(8), model, 1, &[(32, 0.4)])
                .into_iter()
                .chain(std::iter::once(
                    run(&lis(8), model, 64)
                        .headline(0.6)
                        .ending(ending)
                        .record(),
                ))
        };
        let mut records = vec![solved(&lis(8), Standard, 32, 1000.0).record()];
        records.extend(failing(Sparse, Plateaued));
        records.extend(failing(Linear, OutOfBudget));
        let text = compute_text(records);
        assert!(
            text.contains("In 1 further case an efficient model plateaued below the threshold at every searched dimension where the standard model solved the problem: evidence that it lacks the capacity."),
            "{text}"
        );
        assert!(
            text.contains("In 1 further case an efficient model ran out of steps while still improving where the standard model solved the problem: no evidence either way."),
            "{text}"
        );
        assert!(!text.contains("not recorded"), "{text}");
    }

    #[test]
    fn a_cell_no_seed_solved_says_why() {
        let mut records = Vec::new();
        // Standard: both seeds plateau at 64. Sparse: seed 1 solves, seed 2 runs out of budget.
        for seed in [1, 2] {
            records.push(
                run(&lis(8), Standard, 32)
                    .seed(seed)
                    .ending(OutOfBudget)
                    .record(),
            );
            records.push(
                run(&lis(8), Standard, 64)
                    .seed(seed)
                    .ending(Plateaued)
                    .record(),
            );
        }
        records.push(
            run(&lis(8), Sparse, 32)
                .headline(0.95)
                .ending(Passed)
                .record(),
        );
        records.push(
            run(&lis(8), Sparse, 64)
                .seed(2)
                .ending(OutOfBudget)
                .record(),
        );
        records.extend(unsolved(Linear));
        let analysis = assert_lis_table_rows(
            records,
            &[
                "| standard | > 64 (plateau) |",
                "| sparse | > 64 (budget) |",
                "| linear | > 64 |",
            ],
        );
        let csv = min_dims_csv(&analysis);
        assert!(csv.contains(",standard,,,,2,plateaued\n"), "{csv}");
        assert!(csv.contains(",sparse,,,,2,out of budget\n"), "{csv}");
    }

    #[test]
    fn a_run_passed_on_validation_is_not_a_failure_though_its_test_accuracy_is_low() {
        let records = vec![
            run(&lis(8), Standard, 32)
                .headline(0.5)
                .validation(0.95)
                .ending(Passed)
                .record(),
            run(&lis(8), Standard, 16)
                .seed(2)
                .headline(0.95)
                .validation(0.6)
                .ending(Plateaued)
                .record(),
        ];
        let analysis = analyse(records);
        let mut md = String::new();
        failure_section(&mut md, &analysis, Experiment::General, THRESHOLD);
        assert!(
            !md.contains("-d32-s1"),
            "seed 1 passed on validation:\n{md}"
        );
        assert!(
            md.contains("| `general-lis-8-standard-d16-s2` | 60.0% | 95.0% | plateaued |"),
            "seed 2 failed on validation; its test accuracy is shown:\n{md}"
        );
        let csv = runs_csv(&analysis);
        assert!(
            csv.contains(",standard,32,1,0.5000,0.9500,passed,"),
            "test then validation accuracy, then the ending:\n{csv}"
        );
    }

    #[test]
    fn the_endings_table_counts_each_models_runs() {
        let records = vec![
            run(&lis(8), Standard, 16).ending(Plateaued).record(),
            run(&lis(8), Standard, 32).ending(Passed).record(),
            run(&lis(8), Sparse, 32).ending(OutOfBudget).record(),
            run(&lis(8), Sparse, 64).record(),
            run(&lis(8), Linear, 64)
                .experiment(Experiment::Locality)
                .ending(Passed)
                .record(),
        ];
        let mut md = String::new();
        endings_section(&mut md, &analyse(records), Experiment::General);
        assert!(md.contains("| standard | 1 | 1 | 0 | 0 |"), "{md}");
        assert!(md.contains("| sparse | 0 | 0 | 1 | 1 |"), "{md}");
        assert!(!md.contains("linear"), "another experiment's run: {md}");
    }

    #[test]
    fn the_growth_table_puts_each_slope_beside_the_standard_models() {
        let mut records = Vec::new();
        // L = 11, 35, 131: standard flat at 16; sparse 16 → 32, then unsolved.
        for n in [4, 16, 64] {
            records.push(solved(&lis(n), Standard, 16, 1.0).record());
        }
        records.push(solved(&lis(4), Sparse, 16, 1.0).record());
        records.push(solved(&lis(16), Sparse, 32, 1.0).record());
        records.extend(search(&lis(64), Sparse, 1, &[(64, 0.5)]));
        let analysis = analyse(records);
        let mut md = String::new();
        growth_section(&mut md, &analysis, Experiment::General);
        let sparse = 2f64.ln() / (35f64 / 11.0).ln();
        for row in [
            "| lis | standard | 3 of 3 | 0.00 | 0.00 | 0.5 |".to_string(),
            format!("| lis | sparse | 2 of 3 (1 unsolved: slope is a lower bound) | {sparse:.2} | 0.00 | 0.5 |"),
        ] {
            assert!(md.contains(&row), "`{row}` in\n{md}");
        }
        let csv = growth_csv(&analysis);
        assert!(
            csv.contains("general,lis,sparse,3,1,true,1,0.5989,0.5989,0.5989\n"),
            "{csv}"
        );
        assert!(
            csv.contains("general,lis,standard,3,0,false,1,0.0000,"),
            "{csv}"
        );
    }

    #[test]
    fn a_failed_efficient_model_counts_against_it_only_where_the_standard_model_passed() {
        // The standard model fails lis-8; sparse solves it and linear does not.
        let mut records = unsolved(Standard);
        records.push(solved(&lis(8), Sparse, 32, 500.0).record());
        records.extend(unsolved(Linear));
        // A general task the standard model did solve, in another experiment, with the same name.
        records.push(
            run(&lis(8), Standard, 32)
                .experiment(Experiment::Locality)
                .headline(0.95)
                .record(),
        );
        records.extend(unsolved(Linear).into_iter().map(|mut r| {
            r.key.experiment = Experiment::Locality;
            r
        }));
        let text = compute_text(records);
        assert!(
            !text.contains("further case"),
            "the standard model did not solve `general` lis-8: {text}"
        );
    }

    #[test]
    fn when_no_model_passes_there_is_no_compute_to_compare() {
        let mut records = unsolved(Standard);
        records.extend(unsolved(Sparse));
        let text = compute_text(records);
        assert_eq!(
            text,
            "No model reached the threshold, so there is no compute to compare.\n\n"
        );
    }

    #[test]
    fn modern_tables_put_the_paper_models_beside_and_compare_with_their_standard() {
        use crate::profile::ModelChoice::{DeltaNet, Gla, Mamba};
        let modern = |model, d, flops| {
            solved(&lis(8), model, d, flops)
                .experiment(Experiment::Modern)
                .record()
        };
        let mut records = vec![
            solved(&lis(8), Standard, 32, 1000.0).record(),
            solved(&lis(8), Linear, 48, 2000.0).record(),
            modern(Gla, 32, 1500.0),
            modern(Mamba, 16, 500.0),
        ];
        records.extend(
            search(&lis(8), DeltaNet, 1, &[(16, 0.2), (32, 0.4)])
                .into_iter()
                .map(|mut r| {
                    r.key.experiment = Experiment::Modern;
                    r
                }),
        );
        let analysis = analyse(records);
        let mut md = String::new();
        min_dim_table(
            &mut md,
            &analysis,
            Experiment::Modern,
            "lis",
            &smoke_profile(),
        );
        for row in [
            "| standard | 32 |",
            "| linear | 48 |",
            "| gla | 32 |",
            "| deltanet | > 32 |",
            "| mamba | 16 |",
        ] {
            assert!(md.contains(row), "`{row}` in\n{md}");
        }
        // Models run on none of these problems are left out.
        assert!(!md.contains("| sparse |"), "{md}");
        // The rows of the paper's models come first.
        assert!(md.find("| linear |") < md.find("| gla |"), "{md}");
        let gla = analysis
            .compute
            .iter()
            .find(|c| c.model == "gla")
            .expect("gla solved");
        assert_eq!(
            ratio_cells(&analysis, gla, Table::Markdown),
            ["1.50×", "1.00×"]
        );
        // GLA's state (4 heads of 8×8 floats per layer, 3 layers) does not depend on L; the
        // standard model's KV cache does.
        assert_eq!(gla.state_bytes, (4 * 3 * 4 * 8 * 8) as f64);
        let standard = analysis
            .compute
            .iter()
            .find(|c| c.model == "standard")
            .unwrap();
        assert_eq!(standard.state_bytes, (4 * 3 * 2 * 19 * 32) as f64);
    }

    #[test]
    fn ratio_cells_are_written_once_for_both_tables() {
        let analysis = analyse(vec![
            solved(&lis(8), Standard, 32, 1000.0)
                .decode_seconds_per_token(1e-6)
                .record(),
            solved(&lis(8), Sparse, 64, 2500.0)
                .decode_seconds_per_token(3e-6)
                .record(),
            // No standard run on lis-16: no ratio.
            run(&lis(16), Linear, 16).headline(0.95).record(),
        ]);
        let row = |task: &str, model: ModelChoice| {
            analysis
                .compute
                .iter()
                .find(|c| c.task == task && c.model == model.name())
                .expect("solved")
        };
        let sparse = row("lis-8", Sparse);
        assert_eq!(
            ratio_cells(&analysis, sparse, Table::Markdown),
            ["2.50×", "3.00×"]
        );
        assert_eq!(
            ratio_cells(&analysis, sparse, Table::Csv),
            ["2.5000", "3.0000"]
        );
        let alone = row("lis-16", Linear);
        assert_eq!(ratio_cells(&analysis, alone, Table::Markdown), ["–", "–"]);
        assert_eq!(ratio_cells(&analysis, alone, Table::Csv), ["", ""]);
        let csv = compute_csv(&analysis);
        assert!(
            csv.contains(",lis-8,19,sparse,64,4096,2.5000e3,2.5000,3.0000e-6,3.0000,10752,,"),
            "{csv}"
        );
        let mut md = String::new();
        compute_section(&mut md, &analysis, Experiment::General);
        assert!(
            md.contains(
                "| lis-8 | 19 | sparse | 64 | 4096 | 2.500e3 | 2.50× | 3.0 | 3.00× | 10.5 | – |"
            ),
            "{md}"
        );
    }

    #[test]
    fn the_minimal_dimension_table_shows_ranges_failures_and_gaps() {
        let mut records = Vec::new();
        // Standard: 32 for both seeds (and 32 on a larger problem, where the others did not
        // run); sparse: 32 and 64; linear: never; sliding: not run on these problems at all.
        for seed in [1, 2] {
            records.extend(search(&lis(8), Standard, seed, &[(32, 0.95), (16, 0.5)]));
        }
        records.extend(search(&lis(16), Standard, 1, &[(32, 0.95), (16, 0.5)]));
        records.extend(search(&lis(8), Sparse, 1, &[(32, 0.95), (16, 0.5)]));
        records.extend(search(&lis(8), Sparse, 2, &[(32, 0.5), (64, 0.95)]));
        records.extend(unsolved(Linear));
        records.push(
            run(&local_lis(8, 2), Sliding { window: 4 }, 16)
                .experiment(Experiment::Locality)
                .record(),
        );
        let analysis = assert_lis_table_rows(
            records,
            &[
                "| standard | 32 | 32 |",
                "| sparse | 48 (32–64) | – |",
                "| linear | > 64 | – |",
            ],
        );
        let mut md = String::new();
        let general = Experiment::General;
        min_dim_table(&mut md, &analysis, general, "lis", &smoke_profile());
        assert!(
            !md.contains("sliding"),
            "no row for a model not run here:\n{md}"
        );
        let csv = min_dims_csv(&analysis);
        assert!(
            csv.contains("general,lis-8,19,sparse,48.0,32,64,2,\n"),
            "{csv}"
        );
        assert!(
            csv.contains("general,lis-8,19,linear,,,,1,unknown\n"),
            "{csv}"
        );
    }

    #[test]
    fn a_report_from_hand_made_records_has_its_sections_tables_and_figures() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let shards = [
            Results::new(dir.path().join("shard1")),
            Results::new(dir.path().join("shard2")),
        ];
        let mut records = search(&lis(8), Standard, 1, &[(32, 0.95), (16, 0.5)]);
        records.extend(search(&lis(8), Sparse, 1, &[(32, 0.6), (64, 0.95)]));
        records.extend(search(&lis(16), Standard, 1, &[(32, 0.95), (16, 0.5)]));
        records.extend(search(&lis(16), Sparse, 1, &[(32, 0.5), (64, 0.6)]));
        for (i, record) in records.iter().enumerate() {
            let id = record.key.id();
            crate::results::write_record(&shards[i % 2].record(&id), record).unwrap();
            if i == 0 {
                // The same run in both shards is one run.
                crate::results::write_record(&shards[1].record(&id), record).unwrap();
            }
        }
        let mut profile = smoke_profile();
        profile.threshold = THRESHOLD;
        let out = dir.path().join("report");
        let files = write_report(&profile, &shards, &out).expect("the report is written");
        let md = std::fs::read_to_string(&files.report).unwrap();
        for expected in [
            "## General DP tasks",
            "| sparse | 64 | > 64 |",
            "in 0 of 1 comparisons; it spends as many or more in 1 (sparse on `lis-8` (4.00×)).",
            "In 1 further case an efficient model reached the threshold at no searched dimension",
            "8 runs,",
            "A run *passes* when its validation accuracy reaches 90%",
            "over 20000 samples",
            "without `<eos>`",
            "### Growth of the minimal dimension",
            "| lis | sparse | 1 of 2 (1 unsolved: slope is a lower bound) | – | 0.00 | 0.5 |",
            "### How the runs ended",
        ] {
            assert!(md.contains(expected), "`{expected}` in\n{md}");
        }
        assert_eq!(files.tables.len(), 4);
        let runs = std::fs::read_to_string(out.join("tables/runs.csv")).unwrap();
        assert_eq!(
            runs.lines().count(),
            1 + 8,
            "a header and one line per run:\n{runs}"
        );
        assert!(runs.contains(",general,lis-16,35,sparse,64,1,"), "{runs}");
        for stem in [
            "general-lis-heatmap",
            "general-lis-min-dim",
            "general-compute-ratios",
        ] {
            for ext in ["png", "svg"] {
                let path = out.join("figures").join(format!("{stem}.{ext}"));
                assert!(
                    files.figures.contains(&path),
                    "{path:?} in {:?}",
                    files.figures
                );
                assert!(
                    path.metadata().is_ok_and(|m| m.len() > 0),
                    "{path:?} is empty"
                );
            }
        }
    }
}
