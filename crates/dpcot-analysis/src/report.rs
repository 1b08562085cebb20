//! `report.md`, its CSV tables and figures, from the records of a results directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dpcot_model::dpcot_attention::AttentionKind;

use crate::plots;
use crate::profile::{Experiment, ModelChoice, Profile};
use crate::results::{write_atomic, Results, RunRecord};
use crate::summary::{Analysis, ComputeAtAccuracy};
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
            other => other,
        };
        writeln!(md, "## {title}\n").unwrap();
        if experiment == Experiment::General {
            writeln!(md, "{PAPER_CLAIM}\n").unwrap();
        }
        if experiment == Experiment::Locality {
            writeln!(md, "{LOCALITY_CLAIM}\n").unwrap();
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
    writeln!(
        md,
        "Tables: `tables/runs.csv` (every run), `tables/min_dims.csv`, `tables/compute.csv`."
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
        "Setup: {} layers, {} heads, dropout {}; up to {} steps of batch {} (AdamW, lr {}), \
         stopping early once the headline accuracy reaches {:.0}%; {} training and {} test \
         examples per run; seeds {:?}; backend `{backend}`. A model *solves* a problem at a dimension \
         when its headline accuracy (the paper's metric: final-answer accuracy for arithmetic, \
         teacher-forced exact match for LIS and ED) reaches {:.0}%. The minimal dimension is \
         searched by bisection over the grid (each search starting from the answer for the next \
         smaller size), so blank heatmap cells were not trained. {} runs. {}\n",
        model.n_layers,
        model.n_heads,
        model.dropout,
        t.steps,
        t.batch_size,
        t.learning_rate,
        100.0 * profile.threshold,
        profile.data.train(),
        profile.data.test(),
        profile.seeds,
        100.0 * profile.threshold,
        analysis.records.len(),
        sparse_pattern(profile)
    )
    .unwrap();
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
    for model in analysis.models() {
        write!(md, "| {} |", model.name()).unwrap();
        for p in &points {
            let cell = match analysis.min_dim(p, model) {
                Some(s) if s.n > 1 && s.min != s.max => {
                    format!(" {:.0} ({:.0}–{:.0}) |", s.mean, s.min, s.max)
                }
                Some(s) => format!(" {:.0} |", s.mean),
                None if analysis.min_dims.contains_key(&(p.clone(), model)) => {
                    format!(" > {largest} |")
                }
                None => " – |".to_string(),
            };
            md.push_str(&cell);
        }
        md.push('\n');
    }
    writeln!(
        md,
        "\nMinimal embedding dimension reaching {:.0}% (mean and range over seeds; `> d`: no searched dimension did).\n",
        100.0 * profile.threshold
    )
    .unwrap();
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
         | task | L | model | dim | params | FLOPs/token | ratio | decode µs/token | ratio | peak MiB | train FLOPs | train s | steps |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    .unwrap();
    for c in &rows {
        let [flops_ratio, time_ratio] = ratio_cells(analysis, c, Table::Markdown);
        writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.0} | {:.3e} | {} | {:.1} | {} | {} | {:.2e} | {:.1} | {:.0} |",
            c.task,
            c.length,
            c.model,
            c.min_dim,
            c.parameters,
            c.decode_flops_per_token,
            flops_ratio,
            1e6 * c.decode_seconds_per_token,
            time_ratio,
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
    // Efficient models that failed a problem of this experiment which the standard model solved.
    let unsolved = analysis
        .min_dims
        .iter()
        .filter(|((p, m), mins)| {
            p.experiment == experiment
                && *m != ModelChoice::Standard
                && mins.iter().any(Option::is_none)
                && analysis.min_dim(p, ModelChoice::Standard).is_some()
        })
        .count();
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
    if unsolved > 0 {
        write!(text, " In {unsolved} further cases an efficient model reached the threshold at no searched dimension while the standard model did.").unwrap();
    }
    text.push_str(" The measured decode times per token are in the table; at these small lengths fixed per-step costs weigh more than the attention's share.\n");
    text
}

fn failure_section(md: &mut String, analysis: &Analysis, experiment: Experiment, threshold: f64) {
    writeln!(
        md,
        "### Where chains go wrong\n\n\
         For every run below the threshold, the first wrong step of its free-generation chains \
         (step index / steps of a right chain, averaged over the wrong chains) and how they go wrong.\n\n\
         | run | headline | chains right | mean first wrong step (relative) | kinds |\n|---|---|---|---|---|"
    )
    .unwrap();
    let mut any = false;
    for r in analysis
        .records
        .iter()
        .filter(|r| r.key.experiment == experiment && r.summary.eval.headline < threshold)
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
            "| `{}` | {:.1}% | {:.1}% | {:.2} | {:?} |",
            r.key.id(),
            100.0 * e.headline,
            100.0 * e.chain_accuracy,
            mean / steps,
            e.first_wrong_kind
        )
        .unwrap();
        any = true;
    }
    if !any {
        writeln!(md, "| (every run reached the threshold) | | | | |").unwrap();
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
    let mut csv = String::from("id,experiment,task,length,model,d_model,seed,headline,answer_accuracy,chain_accuracy,teacher_forced_accuracy,steps,train_seconds,train_flops,decode_flops_per_token,decode_seconds_per_token,wall_seconds\n");
    for (p, r) in analysis.runs() {
        let e = &r.summary.eval;
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{:.4},{:.4},{:.4},{:.4},{},{:.2},{:.4e},{:.4e},{:.4e},{:.2}",
            r.key.id(),
            r.key.experiment,
            p.task,
            p.length,
            r.key.model.name(),
            r.key.d_model,
            r.key.seed,
            e.headline,
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
    let mut csv =
        String::from("experiment,task,length,model,min_dim_mean,min_dim_min,min_dim_max,seeds\n");
    for ((p, m), mins) in &analysis.min_dims {
        let s = analysis.min_dim(p, *m);
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{}",
            p.experiment,
            p.task,
            p.length,
            m.name(),
            s.map(|s| format!("{:.1}", s.mean)).unwrap_or_default(),
            s.map(|s| s.min.to_string()).unwrap_or_default(),
            s.map(|s| s.max.to_string()).unwrap_or_default(),
            mins.len()
        )
        .unwrap();
    }
    csv
}

fn compute_csv(analysis: &Analysis) -> String {
    let mut csv = String::from("experiment,task,length,model,min_dim,parameters,decode_flops_per_token,flops_ratio,decode_seconds_per_token,time_ratio,peak_memory_bytes,train_flops,train_seconds,train_steps\n");
    for c in &analysis.compute {
        let [flops_ratio, time_ratio] = ratio_cells(analysis, c, Table::Csv);
        writeln!(
            csv,
            "{},{},{},{},{},{},{:.4e},{},{:.4e},{},{},{:.4e},{:.2},{}",
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
            !text.contains("further cases"),
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
            text.contains("In 2 further cases an efficient model reached the threshold at no searched dimension while the standard model did."),
            "{text}"
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
            !text.contains("further cases"),
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
            csv.contains(",lis-8,20,sparse,64,4096,2.5000e3,2.5000,3.0000e-6,3.0000,,"),
            "{csv}"
        );
        let mut md = String::new();
        compute_section(&mut md, &analysis, Experiment::General);
        assert!(
            md.contains("| lis-8 | 20 | sparse | 64 | 4096 | 2.500e3 | 2.50× | 3.0 | 3.00× | – |"),
            "{md}"
        );
    }

    #[test]
    fn the_minimal_dimension_table_shows_ranges_failures_and_gaps() {
        let mut records = Vec::new();
        // Standard: 32 for both seeds; sparse: 32 and 64; linear: never; sliding: not run.
        for seed in [1, 2] {
            records.extend(search(&lis(8), Standard, seed, &[(32, 0.95), (16, 0.5)]));
        }
        records.extend(search(&lis(8), Sparse, 1, &[(32, 0.95), (16, 0.5)]));
        records.extend(search(&lis(8), Sparse, 2, &[(32, 0.5), (64, 0.95)]));
        records.extend(unsolved(Linear));
        records.push(
            run(&local_lis(8, 2), Sliding { window: 4 }, 16)
                .experiment(Experiment::Locality)
                .record(),
        );
        let analysis = analyse(records);
        let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/profiles/smoke.toml");
        let profile = Profile::load(&smoke).expect("the smoke profile loads");
        let mut md = String::new();
        min_dim_table(&mut md, &analysis, Experiment::General, "lis", &profile);
        for row in [
            "| standard | 32 |",
            "| sparse | 48 (32–64) |",
            "| linear | > 64 |",
            "| sliding-w4 | – |",
        ] {
            assert!(md.contains(row), "`{row}` in\n{md}");
        }
        let csv = min_dims_csv(&analysis);
        assert!(
            csv.contains("general,lis-8,20,sparse,48.0,32,64,2\n"),
            "{csv}"
        );
        assert!(csv.contains("general,lis-8,20,linear,,,,1\n"), "{csv}");
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
            crate::results::write_json_atomic(&shards[i % 2].record(&id), record).unwrap();
            if i == 0 {
                // The same run in both shards is one run.
                crate::results::write_json_atomic(&shards[1].record(&id), record).unwrap();
            }
        }
        let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/profiles/smoke.toml");
        let mut profile = Profile::load(&smoke).expect("the smoke profile loads");
        profile.threshold = THRESHOLD;
        let out = dir.path().join("report");
        let files = write_report(&profile, &shards, &out).expect("the report is written");
        let md = std::fs::read_to_string(&files.report).unwrap();
        for expected in [
            "## General DP tasks",
            "| sparse | 64 | > 64 |",
            "in 0 of 1 comparisons; it spends as many or more in 1 (sparse on `lis-8` (4.00×)).",
            "In 1 further cases",
            "8 runs,",
        ] {
            assert!(md.contains(expected), "`{expected}` in\n{md}");
        }
        assert_eq!(files.tables.len(), 3);
        let runs = std::fs::read_to_string(out.join("tables/runs.csv")).unwrap();
        assert_eq!(
            runs.lines().count(),
            1 + 8,
            "a header and one line per run:\n{runs}"
        );
        assert!(runs.contains(",general,lis-16,36,sparse,64,1,"), "{runs}");
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
