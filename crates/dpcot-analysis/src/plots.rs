//! Figures (PNG and SVG, with plotters): the accuracy heatmap of the paper's Figure 1, the
//! minimal dimension against the problem size, and compute ratios at equal accuracy.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::profile::{Experiment, ModelChoice};
use crate::summary::{Analysis, Point};
use crate::AnalysisError;

const FONT: &str = "sans-serif";

/// plotters draws text with an embedded font (DejaVu Sans), so figures render the same on
/// machines without system fonts.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a valid TTF shipped by the `dejavu` crate.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Draws `figure` into `<stem>.png` and `<stem>.svg`; returns both paths.
fn both_formats(
    stem: &Path,
    size: (u32, u32),
    figure: impl Fn(DrawingArea<SVGBackend, Shift>) -> Result<(), String> + Copy,
    figure_png: impl Fn(DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<PathBuf>, AnalysisError> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir).map_err(AnalysisError::io(dir))?;
    }
    let fail = |path: &Path, reason: String| AnalysisError::Plot {
        path: path.to_path_buf(),
        reason,
    };
    figure_png(BitMapBackend::new(&png, size).into_drawing_area()).map_err(|e| fail(&png, e))?;
    figure(SVGBackend::new(&svg, size).into_drawing_area()).map_err(|e| fail(&svg, e))?;
    Ok(vec![png, svg])
}

macro_rules! figure {
    ($stem:expr, $size:expr, |$root:ident| $body:expr) => {
        both_formats(
            $stem,
            $size,
            |$root: DrawingArea<SVGBackend, Shift>| -> Result<(), String> { $body },
            |$root: DrawingArea<BitMapBackend, Shift>| -> Result<(), String> { $body },
        )
    };
}

type Log2Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A white figure with a title, a linear x axis from 0 and a y axis in log₂ units: series are
/// drawn at `(x, log₂ y)` (see [`log2`]) and the y labels show `y` itself, `label(y)`.
fn log2_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_max: f64,
    (y_min, y_max): (f64, f64),
    (x_desc, y_desc): (&str, &str),
    label: fn(f64) -> String,
) -> Result<Log2Chart<'a, DB>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (lo, hi) = (y_min.log2(), y_max.log2());
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, lo..hi)
        .map_err(|e| e.to_string())?;
    // One label per power of two in range (at least a few).
    let labels = ((hi - lo).ceil() as usize + 1).max(3);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_labels(labels)
        .y_label_formatter(&|v| label(v.exp2()))
        .label_style((FONT, 12))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// Points in the coordinates of [`log2_chart`].
fn log2(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points.iter().map(|&(x, y)| (x, y.log2())).collect()
}

/// A legend box in the upper left corner.
fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut Log2Chart<'a, DB>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 11))
        .draw()
        .map_err(|e| e.to_string())
}

/// Markers told apart even where the models' points coincide.
fn draw_markers<'a, DB: DrawingBackend + 'a>(
    chart: &mut Log2Chart<'a, DB>,
    model: ModelChoice,
    points: &[(f64, f64)],
    colour: RGBColor,
) -> Result<(), String> {
    let result = match model {
        ModelChoice::Standard => chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 7, colour.stroke_width(2))),
            )
            .map(|_| ()),
        ModelChoice::Sparse => chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 6, colour.filled())),
            )
            .map(|_| ()),
        ModelChoice::Linear => chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Cross::new(p, 5, colour.stroke_width(2))),
            )
            .map(|_| ()),
        ModelChoice::Sliding { .. } => chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map(|_| ()),
    };
    result.map_err(|e| e.to_string())
}

/// The y range of a minimal-dimension plot: the values found, and at least 16 to 32, with room.
fn dimension_range(values: &[f64]) -> (f64, f64) {
    let low = values.iter().copied().fold(16.0, f64::min);
    let high = values.iter().copied().fold(32.0, f64::max);
    (low / 1.5, high * 1.5)
}

/// One model's curve (`faded` for a reference curve) with its markers and legend entry.
fn draw_model_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Log2Chart<'a, DB>,
    label: &str,
    model: ModelChoice,
    faded: bool,
    points: &[(f64, f64)],
) -> Result<(), String> {
    let colour = model_colour(model);
    let style = if faded {
        colour.mix(0.35).stroke_width(2)
    } else {
        colour.stroke_width(2)
    };
    chart
        .draw_series(LineSeries::new(log2(points), style))
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    draw_markers(chart, model, &log2(points), colour)
}

/// Red (0) through yellow to green (1).
fn accuracy_colour(accuracy: f64) -> HSLColor {
    HSLColor(accuracy.clamp(0.0, 1.0) / 3.0, 0.65, 0.55)
}

fn model_colour(model: ModelChoice) -> RGBColor {
    match model {
        ModelChoice::Standard => RGBColor(31, 119, 180),
        ModelChoice::Sparse => RGBColor(214, 39, 40),
        ModelChoice::Linear => RGBColor(44, 160, 44),
        ModelChoice::Sliding { .. } => RGBColor(148, 103, 189),
    }
}

/// The paper's Figure 1 for one task family: rows model × size, columns dimension, colour and
/// number = accuracy; blank where the search did not train that dimension. `grid` is the
/// profile's dimension grid, so that dimensions the search skipped show as gaps.
pub fn heatmap(
    analysis: &Analysis,
    experiment: Experiment,
    family: &str,
    grid: &[usize],
    stem: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let points = analysis.points(experiment, family);
    let mut dims = analysis.dims(experiment, family);
    dims.extend_from_slice(grid);
    dims.sort_unstable();
    dims.dedup();
    let models = analysis.models();
    let rows: Vec<(ModelChoice, &Point)> = models
        .iter()
        .flat_map(|&m| points.iter().map(move |p| (m, p)))
        .collect();
    let (n_rows, n_cols) = (rows.len() as i32, dims.len() as i32);
    let size = ((180 + 70 * n_cols as u32).max(560), 90 + 28 * n_rows as u32);
    let title = format!("{family}: accuracy by model, length L and dimension");
    figure!(stem, size, |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, (FONT, 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(140)
            .build_cartesian_2d(
                (0..n_cols - 1).into_segmented(),
                (0..n_rows - 1).into_segmented(),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n_cols as usize)
            .y_labels(n_rows as usize)
            .x_desc("embedding dimension")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(c) => dims
                    .get(*c as usize)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(r) => rows
                    .get((n_rows - 1 - *r) as usize)
                    .map(|(m, p)| format!("{} L={}", m.name(), p.length))
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .label_style((FONT, 12))
            .draw()
            .map_err(|e| e.to_string())?;
        for (r, (model, point)) in rows.iter().enumerate() {
            let y = n_rows - 1 - r as i32;
            for (c, &dim) in dims.iter().enumerate() {
                let Some(acc) = analysis.mean_accuracy(point, *model, dim) else {
                    continue;
                };
                let c = c as i32;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [
                            (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                        ],
                        accuracy_colour(acc).filled(),
                    )))
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{:.0}", 100.0 * acc),
                        (SegmentValue::CenterOf(c), SegmentValue::CenterOf(y)),
                        (FONT, 12).into_font().color(&BLACK),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())
    })
}

/// Minimal dimension against L for each model, with a √L reference through the efficient
/// models' first point. Points where no searched dimension sufficed are left out.
pub fn min_dim_curve(
    analysis: &Analysis,
    experiment: Experiment,
    family: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let points = analysis.points(experiment, family);
    let models = analysis.models();
    let series: Vec<(ModelChoice, Vec<(f64, f64)>)> = models
        .iter()
        .map(|&m| {
            let pts = points
                .iter()
                .filter_map(|p| analysis.min_dim(p, m).map(|s| (p.length as f64, s.mean)))
                .collect();
            (m, pts)
        })
        .collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    let dims = analysis.dims(experiment, family);
    let (x_max, y_min, y_max) = (
        points.iter().map(|p| p.length).max().unwrap_or(1) as f64 * 1.1,
        *dims.first().unwrap_or(&1) as f64 / 1.5,
        *dims.last().unwrap_or(&1) as f64 * 1.5,
    );
    // √L through the smallest-L point of the efficient models (or of any model).
    let anchor = series
        .iter()
        .filter(|(m, _)| *m != ModelChoice::Standard)
        .flat_map(|(_, s)| s.first().copied())
        .chain(all.first().copied())
        .next();
    let title = format!("{family}: minimal dimension reaching the threshold");
    figure!(stem, (640, 420), |root| {
        let mut chart = log2_chart(
            &root,
            &title,
            x_max,
            (y_min, y_max),
            (
                "problem size L (max sequence length)",
                "minimal embedding dimension",
            ),
            |d| format!("{d:.0}"),
        )?;
        if let Some((l0, d0)) = anchor {
            let curve: Vec<(f64, f64)> = (1..=50)
                .map(|i| x_max * i as f64 / 50.0)
                .map(|l| (l, d0 * (l / l0).sqrt()))
                .collect();
            chart
                .draw_series(LineSeries::new(log2(&curve), BLACK.mix(0.4)))
                .map_err(|e| e.to_string())?
                .label("√L reference")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.4)));
        }
        for (model, pts) in &series {
            draw_model_line(&mut chart, &model.name(), *model, false, pts)?;
        }
        legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())
    })
}

/// Efficient/standard ratios at equal accuracy against L: FLOPs per generated token and
/// measured decode time per token. Below 1 the efficient model is cheaper.
pub fn compute_ratios(
    analysis: &Analysis,
    experiment: Experiment,
    stem: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
    type Line = (String, RGBColor, bool, Vec<(f64, f64)>);
    let mut lines: Vec<Line> = Vec::new();
    for model in analysis
        .models()
        .into_iter()
        .filter(|m| *m != ModelChoice::Standard)
    {
        for (family, _) in analysis
            .families()
            .into_iter()
            .filter(|(e, _)| *e == experiment)
            .map(|(_, f)| (f, ()))
        {
            let rows: Vec<_> = analysis
                .compute
                .iter()
                .filter(|c| c.experiment == experiment && c.model == model.name())
                .filter(|c| {
                    analysis
                        .points(experiment, &family)
                        .iter()
                        .any(|p| p.task == c.task)
                })
                .collect();
            let flops: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|c| {
                    analysis
                        .ratio_to_standard(c, |c| c.decode_flops_per_token)
                        .map(|r| (c.length as f64, r))
                })
                .collect();
            let time: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|c| {
                    analysis
                        .ratio_to_standard(c, |c| c.decode_seconds_per_token)
                        .map(|r| (c.length as f64, r))
                })
                .collect();
            if !flops.is_empty() {
                lines.push((
                    format!("{} {family} FLOPs/token", model.name()),
                    model_colour(model),
                    false,
                    flops,
                ));
                lines.push((
                    format!("{} {family} time/token", model.name()),
                    model_colour(model),
                    true,
                    time,
                ));
            }
        }
    }
    let values: Vec<f64> = lines.iter().flat_map(|l| l.3.iter().map(|p| p.1)).collect();
    let (lo, hi) = (
        values.iter().copied().fold(0.5f64, f64::min) / 1.3,
        values.iter().copied().fold(2.0f64, f64::max) * 1.3,
    );
    let x_max = lines
        .iter()
        .flat_map(|l| l.3.iter().map(|p| p.0))
        .fold(10.0f64, f64::max)
        * 1.1;
    let title = format!("{experiment}: efficient / standard at equal accuracy");
    figure!(stem, (720, 440), |root| {
        let mut chart = log2_chart(
            &root,
            &title,
            x_max,
            (lo, hi),
            ("problem size L", "ratio to standard"),
            |r| format!("{r:.2}"),
        )?;
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (x_max, 0.0)],
                BLACK.mix(0.5),
            ))
            .map_err(|e| e.to_string())?;
        for (label, colour, dashed, pts) in &lines {
            let style = if *dashed {
                colour.mix(0.5).stroke_width(2)
            } else {
                colour.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(log2(pts), style))
                .map_err(|e| e.to_string())?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            chart
                .draw_series(
                    log2(pts)
                        .into_iter()
                        .map(|p| Circle::new(p, 3, style.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())
    })
}

/// The locality experiment's central figure: for each model, the minimal dimension against L on
/// the m-local task (solid) and on the general task of the same kind (faded), on one plot.
pub fn local_vs_general(
    analysis: &Analysis,
    local_family: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let points = analysis.all_points();
    let Some(base) = points
        .iter()
        .find(|p| p.family == local_family)
        .map(|p| p.base)
    else {
        return Ok(Vec::new());
    };
    let curve = |family: &str, experiment: Experiment, model: ModelChoice| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter(|p| p.family == family && p.experiment == experiment)
            .filter_map(|p| {
                analysis
                    .min_dim(p, model)
                    .map(|s| (p.length as f64, s.mean))
            })
            .collect()
    };
    let mut lines = Vec::new();
    for model in analysis.models() {
        lines.push((
            format!("{} ({local_family})", model.name()),
            model,
            false,
            curve(local_family, Experiment::Locality, model),
        ));
        lines.push((
            format!("{} ({base})", model.name()),
            model,
            true,
            curve(base, Experiment::General, model),
        ));
    }
    let values: Vec<f64> = lines.iter().flat_map(|l| l.3.iter().map(|p| p.1)).collect();
    let x_max = points
        .iter()
        .filter(|p| p.base == base)
        .map(|p| p.length)
        .max()
        .unwrap_or(1) as f64
        * 1.1;
    let y = dimension_range(&values);
    let title = format!("{local_family} against {base}: minimal dimension");
    figure!(stem, (680, 440), |root| {
        let mut chart = log2_chart(
            &root,
            &title,
            x_max,
            y,
            ("problem size L", "minimal embedding dimension"),
            |d| format!("{d:.0}"),
        )?;
        for (label, model, faded, pts) in &lines {
            draw_model_line(&mut chart, label, *model, *faded, pts)?;
        }
        legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())
    })
}

/// Minimal dimension against the locality knob (LIS window m, ED band w) at one problem size.
pub fn min_dim_vs_locality(
    analysis: &Analysis,
    base: &str,
    length: usize,
    stem: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let points: Vec<Point> = analysis
        .all_points()
        .into_iter()
        .filter(|p| {
            p.experiment == Experiment::Locality
                && p.base == base
                && p.length == length
                && p.locality.is_some()
        })
        .collect();
    let series: Vec<(ModelChoice, Vec<(f64, f64)>)> = analysis
        .models()
        .into_iter()
        .map(|m| {
            let pts = points
                .iter()
                .filter_map(|p| Some((p.locality? as f64, analysis.min_dim(p, m)?.mean)))
                .collect();
            (m, pts)
        })
        .collect();
    let x_max = points.iter().filter_map(|p| p.locality).max().unwrap_or(1) as f64 * 1.2 + 1.0;
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .collect();
    let y = dimension_range(&values);
    let title = format!("{base} at L = {length}: minimal dimension against locality");
    figure!(stem, (640, 420), |root| {
        let mut chart = log2_chart(
            &root,
            &title,
            x_max,
            y,
            ("locality m (window or band)", "minimal embedding dimension"),
            |d| format!("{d:.0}"),
        )?;
        for (model, pts) in &series {
            draw_model_line(&mut chart, &model.name(), *model, false, pts)?;
        }
        legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())
    })
}
