//! Figures (PNG and SVG, with plotters): the accuracy heatmap of the paper's Figure 1, the
//! minimal dimension against the problem size, and compute ratios at equal accuracy.
//!
//! Every minimal-dimension figure draws the same way ([`MinDimCurve`]): the mean over seeds
//! with the seeds' range as an error bar, each model nudged sideways and given its own marker
//! so that coinciding curves stay visible, and a hollow marker with an arrow above the grid's
//! top where some seed solved the problem at no trained dimension.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::profile::{Experiment, ModelChoice};
use crate::summary::{length_meaning, Analysis, Point, Spread};
use crate::AnalysisError;

const FONT: &str = "sans-serif";

/// Opacity of a faded (reference) curve.
const FADED: f64 = 0.35;

/// Where an unsolved point is drawn: this factor above the largest trained dimension.
const UNSOLVED_LIFT: f64 = 1.3;

/// The room above the largest trained dimension when unsolved points are drawn there.
const UNSOLVED_HEADROOM: f64 = 1.8;

/// How far apart the models' curves are nudged, as a fraction of the x axis per model.
const NUDGE: f64 = 0.012;

/// Untrained heatmap cells.
const UNTRAINED: RGBColor = RGBColor(220, 220, 220);

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

/// An axis range showing every value with room either side: a factor of 1.15 on a log scale
/// (1.5 around a single value), 8% of the span on a linear one (20% of the value, at least 1,
/// around a single value). Non-finite values, and on a log scale values ≤ 0, are ignored;
/// `fallback` when none is left.
fn padded_range(values: &[f64], log: bool, fallback: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return fallback;
    }
    if log {
        let factor = if lo == hi { 1.5 } else { 1.15 };
        (lo / factor, hi * factor)
    } else {
        let pad = if lo == hi {
            (0.2 * lo.abs()).max(1.0)
        } else {
            0.08 * (hi - lo)
        };
        (lo - pad, hi + pad)
    }
}

/// How a figure's data map onto its chart: y on a log₂ scale, x on a log₂ or a linear one.
/// Series are drawn at [`Axes::at`]; the labels show the data's own values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axes {
    /// The data range of x.
    x: (f64, f64),
    /// The data range of y (positive).
    y: (f64, f64),
    /// Whether x is on a log₂ scale.
    x_log: bool,
}

impl Axes {
    /// Axes showing `xs` and `ys` with room (see [`padded_range`]).
    fn fitting(xs: &[f64], ys: &[f64], x_log: bool) -> Self {
        Self {
            x: padded_range(xs, x_log, (1.0, 2.0)),
            y: padded_range(ys, true, (16.0, 32.0)),
            x_log,
        }
    }

    fn chart_x(&self, x: f64) -> f64 {
        if self.x_log {
            x.log2()
        } else {
            x
        }
    }

    /// A data point in chart coordinates.
    fn at(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (self.chart_x(x), y.log2())
    }

    fn all(&self, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
        points.iter().map(|&p| self.at(p)).collect()
    }

    fn chart_x_range(&self) -> Range<f64> {
        self.chart_x(self.x.0)..self.chart_x(self.x.1)
    }

    /// `n` data x values evenly spread in chart coordinates across the axis.
    fn sweep_x(&self, n: usize) -> Vec<f64> {
        let Range { start, end } = self.chart_x_range();
        (0..n)
            .map(|i| start + (end - start) * i as f64 / (n - 1).max(1) as f64)
            .map(|x| if self.x_log { x.exp2() } else { x })
            .collect()
    }

    /// The sideways shift, in chart units, of series `k` of `n`: centred on zero, a small
    /// fraction of the axis per series, so that coinciding points stay apart.
    fn nudge(&self, k: usize, n: usize) -> f64 {
        let Range { start, end } = self.chart_x_range();
        (k as f64 - (n as f64 - 1.0) / 2.0) * NUDGE * (end - start)
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A white figure with a title and `axes`; the labels show the data's values, y's as `label(y)`.
fn chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    axes: &Axes,
    (x_desc, y_desc): (&str, &str),
    label: fn(f64) -> String,
) -> Result<Chart<'a, DB>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (lo, hi) = (axes.y.0.log2(), axes.y.1.log2());
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(axes.chart_x_range(), lo..hi)
        .map_err(|e| e.to_string())?;
    // One label per power of two in range (at least a few).
    let labels = ((hi - lo).ceil() as usize + 1).max(3);
    let x_log = axes.x_log;
    let x_label = move |x: &f64| {
        let x = if x_log { x.exp2() } else { *x };
        if x.abs() >= 10.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_labels(labels)
        .y_label_formatter(&|v| label(v.exp2()))
        .x_label_formatter(&x_label)
        .label_style((FONT, 12))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// A legend box in the upper left corner.
fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut Chart<'a, DB>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 11))
        .draw()
        .map_err(|e| e.to_string())
}

/// Markers told apart by shape and size even where the models' points coincide.
fn draw_markers<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    model: ModelChoice,
    points: &[(f64, f64)],
    colour: RGBAColor,
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
        ModelChoice::Gla => chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 8, colour.stroke_width(2))),
            )
            .map(|_| ()),
        ModelChoice::DeltaNet => chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Cross::new(p, 8, colour.stroke_width(1))),
            )
            .map(|_| ()),
        ModelChoice::Mamba => chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 10, colour.stroke_width(1))),
            )
            .map(|_| ()),
    };
    result.map_err(|e| e.to_string())
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
        ModelChoice::Gla => RGBColor(255, 127, 14),
        ModelChoice::DeltaNet => RGBColor(140, 86, 75),
        ModelChoice::Mamba => RGBColor(23, 190, 207),
    }
}

/// One curve of minimal dimensions against x (L, or the locality m): the spread over seeds
/// where every seed solved the problem, and the x values where some seed did not.
#[derive(Debug, Clone, PartialEq)]
struct MinDimCurve {
    label: String,
    model: ModelChoice,
    /// A reference curve, drawn faded.
    faded: bool,
    solved: Vec<(f64, Spread)>,
    unsolved: Vec<f64>,
    /// The top of this curve's own grid, where it differs from the figure's: its unsolved
    /// points say `> grid_top`.
    grid_top: Option<f64>,
}

impl MinDimCurve {
    /// `model`'s curve over `points`, each at its x; points the model was not run on are left
    /// out.
    fn of<'p>(
        analysis: &Analysis,
        model: ModelChoice,
        points: impl IntoIterator<Item = (f64, &'p Point)>,
        label: String,
        faded: bool,
    ) -> Self {
        let mut curve = Self {
            label,
            model,
            faded,
            solved: Vec::new(),
            unsolved: Vec::new(),
            grid_top: None,
        };
        for (x, point) in points {
            if let Some(spread) = analysis.min_dim(point, model) {
                curve.solved.push((x, spread));
            } else if analysis.unsolved(point, model).is_some() {
                curve.unsolved.push(x);
            }
        }
        curve
    }

    /// With its unsolved points labelled `> top` (the largest dimension its own grid trained).
    fn with_grid_top(mut self, top: f64) -> Self {
        self.grid_top = Some(top);
        self
    }

    fn means(&self) -> Vec<(f64, f64)> {
        self.solved.iter().map(|(x, s)| (*x, s.mean)).collect()
    }

    /// Every x the curve has a point at, solved or not.
    fn xs(&self) -> impl Iterator<Item = f64> + '_ {
        self.solved
            .iter()
            .map(|(x, _)| *x)
            .chain(self.unsolved.iter().copied())
    }
}

/// A figure of minimal-dimension curves.
struct MinDimFigure<'a> {
    title: String,
    x_desc: &'a str,
    x_log: bool,
    curves: Vec<MinDimCurve>,
    /// The largest dimension trained: unsolved points are drawn above it, labelled `> top`.
    top: f64,
    /// The smallest dimension trained, kept in view.
    bottom: f64,
    /// Whether to draw a √x reference through the standard model's first point.
    sqrt_reference: bool,
}

impl MinDimFigure<'_> {
    fn axes(&self) -> Axes {
        let xs: Vec<f64> = self.curves.iter().flat_map(MinDimCurve::xs).collect();
        let mut ys = vec![self.bottom, self.top];
        ys.extend(
            self.curves
                .iter()
                .flat_map(|c| c.solved.iter().flat_map(|(_, s)| [s.min, s.max])),
        );
        let mut axes = Axes::fitting(&xs, &ys, self.x_log);
        if self.curves.iter().any(|c| !c.unsolved.is_empty()) {
            axes.y.1 = axes.y.1.max(self.top * UNSOLVED_HEADROOM);
        }
        axes
    }

    /// The point the √L reference passes through: the standard model's first solved point (a
    /// solid curve's before a faded one's), else the median solved point of all curves.
    fn sqrt_anchor(&self) -> Option<(f64, f64)> {
        // Solid curves first: a faded standard model (the paper's run beside a modern figure)
        // anchors only where no solid one does.
        let mut standards: Vec<&MinDimCurve> = self
            .curves
            .iter()
            .filter(|c| c.model == ModelChoice::Standard)
            .collect();
        standards.sort_by_key(|c| c.faded);
        let standard = standards.iter().find_map(|c| c.means().first().copied());
        standard.or_else(|| {
            let mut all: Vec<(f64, f64)> = self.curves.iter().flat_map(|c| c.means()).collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            all.get(all.len() / 2).copied()
        })
    }

    fn draw(&self, stem: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
        let axes = self.axes();
        let n = self.curves.len();
        figure!(stem, (680, 440), |root| {
            let mut chart = chart(
                &root,
                &self.title,
                &axes,
                (self.x_desc, "minimal embedding dimension"),
                |d| format!("{d:.0}"),
            )?;
            if let Some(anchor) = self.sqrt_anchor().filter(|_| self.sqrt_reference) {
                draw_sqrt_reference(&mut chart, &axes, anchor)?;
            }
            for (k, curve) in self.curves.iter().enumerate() {
                draw_min_dim_curve(&mut chart, &axes, curve, axes.nudge(k, n), self.top)?;
            }
            legend(&mut chart)?;
            root.present().map_err(|e| e.to_string())
        })
    }
}

/// A dashed d ∝ √L line through `(l0, d0)`, across the axis.
fn draw_sqrt_reference<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    axes: &Axes,
    (l0, d0): (f64, f64),
) -> Result<(), String> {
    let line: Vec<(f64, f64)> = axes
        .sweep_x(50)
        .into_iter()
        .map(|l| (l, d0 * (l / l0).sqrt()))
        .collect();
    let style = BLACK.mix(0.5).stroke_width(1);
    chart
        .draw_series(DashedLineSeries::new(axes.all(&line), 6, 4, style))
        .map_err(|e| e.to_string())?
        .label("∝ √L")
        .legend(move |(x, y)| {
            plotters::element::DashedPathElement::new(vec![(x, y), (x + 16, y)], 4, 3, style)
        });
    Ok(())
}

/// One curve: line through the means, error bars over the seeds' range, the model's markers,
/// and hollow markers with an up arrow above the grid where it is unsolved, labelled `> top`
/// (or the curve's own grid top); every x shifted by `nudge` chart units.
fn draw_min_dim_curve<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    axes: &Axes,
    curve: &MinDimCurve,
    nudge: f64,
    top: f64,
) -> Result<(), String> {
    // A faded curve is faded throughout: line, error bars, markers and its unsolved points.
    let colour = if curve.faded {
        model_colour(curve.model).mix(FADED)
    } else {
        model_colour(curve.model).to_rgba()
    };
    let style = colour.stroke_width(2);
    let shifted = |p: (f64, f64)| {
        let (x, y) = axes.at(p);
        (x + nudge, y)
    };
    let means: Vec<(f64, f64)> = curve.means().into_iter().map(shifted).collect();
    chart
        .draw_series(LineSeries::new(means.clone(), style))
        .map_err(|e| e.to_string())?
        .label(curve.label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    chart
        .draw_series(
            curve
                .solved
                .iter()
                .filter(|(_, s)| s.varies())
                .map(|(x, s)| {
                    let (x, mean) = shifted((*x, s.mean));
                    ErrorBar::new_vertical(x, s.min.log2(), mean, s.max.log2(), style, 8)
                }),
        )
        .map_err(|e| e.to_string())?;
    draw_markers(chart, curve.model, &means, colour)?;
    let font = (FONT, 11).into_font().color(&colour);
    let label = format!("> {:.0}", curve.grid_top.unwrap_or(top));
    chart
        .draw_series(curve.unsolved.iter().map(|&x| {
            EmptyElement::at(shifted((x, top * UNSOLVED_LIFT)))
                + Circle::new((0, 0), 6, colour.stroke_width(2))
                + PathElement::new(vec![(0, -6), (0, -16)], colour.stroke_width(2))
                + TriangleMarker::new((0, -18), 4, colour.filled())
                + Text::new(label.clone(), (8, -4), font.clone())
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The largest and smallest dimensions trained for any of `families` (experiment, family).
fn trained_extent(analysis: &Analysis, families: &[(Experiment, &str)]) -> (f64, f64) {
    let dims: Vec<usize> = families
        .iter()
        .flat_map(|(e, f)| analysis.dims(*e, f))
        .collect();
    (
        dims.iter().copied().min().unwrap_or(1) as f64,
        dims.iter().copied().max().unwrap_or(1) as f64,
    )
}

/// The colour scale of the heatmap: accuracy 0–100% from bottom to top.
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let mut bar = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(44)
        .margin_right(8)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..1f64, 0f64..100f64)
        .map_err(|e| e.to_string())?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_desc("accuracy")
        .y_label_formatter(&|v| format!("{v:.0}%"))
        .label_style((FONT, 11))
        .draw()
        .map_err(|e| e.to_string())?;
    bar.draw_series((0..100).map(|i| {
        let v = i as f64;
        Rectangle::new(
            [(0.0, v), (1.0, v + 1.0)],
            accuracy_colour(v / 100.0).filled(),
        )
    }))
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// The paper's Figure 1 for one task family: rows model × size, columns dimension, colour and
/// number = mean test accuracy over seeds, with a colour scale; grey with `–` where the search
/// did not train that dimension. `grid` is the profile's dimension grid, so that dimensions the
/// search skipped show as gaps.
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
    let models = analysis.models_on(experiment, family);
    let rows: Vec<(ModelChoice, &Point)> = models
        .iter()
        .flat_map(|&m| points.iter().map(move |p| (m, p)))
        .collect();
    let (n_rows, n_cols) = (rows.len().max(1) as i32, dims.len().max(1) as i32);
    let size = ((250 + 70 * n_cols as u32).max(630), 90 + 28 * n_rows as u32);
    let title = format!("{family}: test accuracy (%) by model, problem size L and dimension");
    figure!(stem, size, |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (main, scale) = root.split_horizontally(size.0 - 70);
        colour_bar(&scale)?;
        let mut chart = ChartBuilder::on(&main)
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
                let accuracy = analysis.mean_accuracy(point, *model, dim);
                let (fill, text) = match accuracy {
                    Some(a) => (accuracy_colour(a).filled(), format!("{:.0}", 100.0 * a)),
                    None => (UNTRAINED.filled(), "–".to_string()),
                };
                let c = c as i32;
                chart
                    .draw_series([Rectangle::new(
                        [
                            (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                        ],
                        fill,
                    )])
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series([Text::new(
                        text,
                        (SegmentValue::CenterOf(c), SegmentValue::CenterOf(y)),
                        (FONT, 12).into_font().color(&BLACK),
                    )])
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())
    })
}

/// The x axis title of a figure against L.
fn length_axis() -> String {
    format!("problem size L: {}", length_meaning())
}

/// The curves of [`min_dim_curve`] and the experiments they come from: every model of
/// `experiment` on `family`, and for the modern experiment the paper's models on the same
/// problems first, faded.
fn min_dim_curves(
    analysis: &Analysis,
    experiment: Experiment,
    family: &str,
) -> (Vec<MinDimCurve>, Vec<Experiment>) {
    let points = analysis.points(experiment, family);
    let curve_over = |points: &[Point], model: ModelChoice, label: String, faded: bool| {
        let at_length = points.iter().map(|p| (p.length as f64, p));
        MinDimCurve::of(analysis, model, at_length, label, faded)
    };
    let mut curves: Vec<MinDimCurve> = Vec::new();
    let mut experiments = vec![experiment];
    if experiment == Experiment::Modern {
        let counterparts: Vec<Point> = points.iter().map(Point::paper_counterpart).collect();
        experiments.extend(counterparts.first().map(|p| p.experiment));
        curves.extend(
            analysis
                .models()
                .into_iter()
                .map(|m| curve_over(&counterparts, m, format!("{} (paper's)", m.name()), true)),
        );
    }
    curves.extend(
        analysis
            .models()
            .into_iter()
            .map(|m| curve_over(&points, m, m.name(), false)),
    );
    curves.retain(|c| !c.solved.is_empty() || !c.unsolved.is_empty());
    (curves, experiments)
}

/// Minimal dimension against L for each model, on log-log axes, with a √L reference through
/// the standard model's first point (beside the modern models: the paper's models, faded).
pub fn min_dim_curve(
    analysis: &Analysis,
    experiment: Experiment,
    family: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let (curves, families) = min_dim_curves(analysis, experiment, family);
    let families: Vec<(Experiment, &str)> = families.iter().map(|&e| (e, family)).collect();
    let (bottom, top) = trained_extent(analysis, &families);
    MinDimFigure {
        title: format!("{family}: minimal dimension reaching the threshold"),
        x_desc: &length_axis(),
        x_log: true,
        curves,
        top,
        bottom,
        sqrt_reference: true,
    }
    .draw(stem)
}

/// Efficient/standard ratios at equal accuracy against L: FLOPs per generated token and
/// measured decode time per token. Below 1 the efficient model is cheaper.
pub fn compute_ratios(
    analysis: &Analysis,
    experiment: Experiment,
    stem: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
    /// One model on one task family: FLOPs (solid) or decode time (faded) per token.
    struct Line {
        model: ModelChoice,
        family: usize,
        time: bool,
        points: Vec<(f64, f64)>,
    }
    let families: Vec<String> = analysis
        .families()
        .into_iter()
        .filter(|(e, _)| *e == experiment)
        .map(|(_, family)| family)
        .collect();
    let mut lines: Vec<Line> = Vec::new();
    for model in analysis
        .models()
        .into_iter()
        .filter(|m| *m != ModelChoice::Standard)
    {
        for (family_index, family) in families.iter().enumerate() {
            let tasks: Vec<String> = analysis
                .points(experiment, family)
                .into_iter()
                .map(|p| p.task)
                .collect();
            let rows: Vec<_> = analysis
                .compute
                .iter()
                .filter(|c| c.experiment == experiment && c.model == model.name())
                .filter(|c| tasks.contains(&c.task))
                .collect();
            let ratios = |value: fn(&crate::summary::ComputeAtAccuracy) -> f64| {
                rows.iter()
                    .filter_map(|c| {
                        analysis
                            .ratio_to_standard(c, value)
                            .map(|r| (c.length as f64, r))
                    })
                    .collect::<Vec<_>>()
            };
            let flops = ratios(|c| c.decode_flops_per_token);
            if !flops.is_empty() {
                let time = ratios(|c| c.decode_seconds_per_token);
                for (time, points) in [(false, flops), (true, time)] {
                    lines.push(Line {
                        model,
                        family: family_index,
                        time,
                        points,
                    });
                }
            }
        }
    }
    // Markers and legend for the families that have lines (the standard model's alone have none).
    let mut used: Vec<usize> = lines.iter().map(|l| l.family).collect();
    used.sort_unstable();
    used.dedup();
    for line in &mut lines {
        line.family = used.partition_point(|&f| f < line.family);
    }
    let families: Vec<&String> = used.iter().map(|&f| &families[f]).collect();
    // A compact legend: a colour per model, a line style per measure and, with more than one
    // task family, a marker per family; the y axis leaves room above the data for it.
    let mut models: Vec<ModelChoice> = lines.iter().map(|l| l.model).collect();
    models.dedup();
    let drawn_families = if families.len() > 1 {
        families.len()
    } else {
        0
    };
    let entries = models.len() + 2 + drawn_families;
    let xs: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    let mut ys: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .collect();
    ys.extend([0.5, 2.0]);
    let mut axes = Axes::fitting(&xs, &ys, true);
    axes.y.1 = legend_headroom(axes.y, entries, RATIO_PLOT_HEIGHT);
    let title = format!("{experiment}: efficient / standard at equal accuracy");
    figure!(stem, (720, 440), |root| {
        let mut chart = chart(
            &root,
            &title,
            &axes,
            (&length_axis(), "ratio to standard"),
            |r| format!("{r:.2}"),
        )?;
        let one: Vec<(f64, f64)> = axes.sweep_x(2).into_iter().map(|x| (x, 1.0)).collect();
        chart
            .draw_series(LineSeries::new(axes.all(&one), BLACK.mix(0.5)))
            .map_err(|e| e.to_string())?;
        let n = lines.len();
        for (k, line) in lines.iter().enumerate() {
            let colour = model_colour(line.model);
            let style = if line.time {
                colour.mix(0.5).stroke_width(2)
            } else {
                colour.stroke_width(2)
            };
            let nudge = axes.nudge(k, n);
            let shifted: Vec<(f64, f64)> = axes
                .all(&line.points)
                .into_iter()
                .map(|(x, y)| (x + nudge, y))
                .collect();
            chart
                .draw_series(LineSeries::new(shifted.clone(), style))
                .map_err(|e| e.to_string())?;
            family_markers(&mut chart, line.family, &shifted, style.filled())?;
        }
        // Legend entries: series without points.
        let nothing = Vec::<(f64, f64)>::new;
        for &model in &models {
            let style = model_colour(model).stroke_width(2);
            chart
                .draw_series(LineSeries::new(nothing(), style))
                .map_err(|e| e.to_string())?
                .label(model.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
        let measures = [
            ("FLOPs per token", BLACK.stroke_width(2)),
            ("decode time per token", BLACK.mix(0.4).stroke_width(2)),
        ];
        for (label, style) in measures {
            chart
                .draw_series(LineSeries::new(nothing(), style))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
        for (k, family) in families.iter().enumerate().take(drawn_families) {
            let style = BLACK.filled();
            let series = chart
                .draw_series(LineSeries::new(nothing(), style))
                .map_err(|e| e.to_string())?
                .label(family.as_str());
            match k % 3 {
                0 => series.legend(move |(x, y)| Circle::new((x + 8, y), 3, style)),
                1 => series.legend(move |(x, y)| TriangleMarker::new((x + 8, y), 4, style)),
                _ => series
                    .legend(move |(x, y)| Rectangle::new([(x + 5, y - 3), (x + 11, y + 3)], style)),
            };
        }
        legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())
    })
}

/// The plotting area's height in pixels of the compute-ratio figure (440 px less its caption,
/// label area and margins), against which [`legend_headroom`] sizes the legend.
const RATIO_PLOT_HEIGHT: f64 = 360.0;

/// The top of a log₂ y range `(lo, hi)` raised so that a legend of `entries` lines in the
/// upper corner of a plot `plot_height` pixels high sits above the data (at most doubling the
/// range's span, so the data keep at least half of the height).
fn legend_headroom((lo, hi): (f64, f64), entries: usize, plot_height: f64) -> f64 {
    const LINE: f64 = 17.0;
    let share = ((entries as f64 * LINE + 12.0) / plot_height).min(0.5);
    let (lo, hi) = (lo.log2(), hi.log2());
    (lo + (hi - lo) / (1.0 - share)).exp2()
}

/// Points of task family `k` (among an experiment's families) as a circle, a triangle or a
/// square, so that two families' lines of one model stay told apart.
fn family_markers<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    k: usize,
    points: &[(f64, f64)],
    style: ShapeStyle,
) -> Result<(), String> {
    let result = match k % 3 {
        0 => chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, style)))
            .map(|_| ()),
        1 => chart
            .draw_series(points.iter().map(|&p| TriangleMarker::new(p, 4, style)))
            .map(|_| ()),
        _ => chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| EmptyElement::at(p) + Rectangle::new([(-3, -3), (3, 3)], style)),
            )
            .map(|_| ()),
    };
    result.map_err(|e| e.to_string())
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
    let of = |family: &str, experiment: Experiment| {
        points
            .iter()
            .filter(move |p| p.family == family && p.experiment == experiment)
            .map(|p| (p.length as f64, p))
            .collect::<Vec<_>>()
    };
    let (local, general) = (
        of(local_family, Experiment::Locality),
        of(base, Experiment::General),
    );
    // The two tasks may have been searched over different grids: each curve's unsolved points
    // name the top of its own.
    let local_top = trained_extent(analysis, &[(Experiment::Locality, local_family)]).1;
    let general_top = trained_extent(analysis, &[(Experiment::General, base)]).1;
    let mut curves = Vec::new();
    for model in analysis.models() {
        let name = model.name();
        let label = format!("{name} ({local_family})");
        curves.push(
            MinDimCurve::of(analysis, model, local.clone(), label, false).with_grid_top(local_top),
        );
        let label = format!("{name} ({base})");
        curves.push(
            MinDimCurve::of(analysis, model, general.clone(), label, true)
                .with_grid_top(general_top),
        );
    }
    let (bottom, top) = trained_extent(
        analysis,
        &[
            (Experiment::Locality, local_family),
            (Experiment::General, base),
        ],
    );
    MinDimFigure {
        title: format!("{local_family} against {base}: minimal dimension"),
        x_desc: &length_axis(),
        x_log: true,
        curves,
        top,
        bottom,
        sqrt_reference: false,
    }
    .draw(stem)
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
    let at_m: Vec<(f64, &Point)> = points
        .iter()
        .filter_map(|p| Some((p.locality? as f64, p)))
        .collect();
    let curves = analysis
        .models()
        .into_iter()
        .map(|m| MinDimCurve::of(analysis, m, at_m.iter().copied(), m.name(), false))
        .collect();
    let families: Vec<(Experiment, &str)> = points
        .iter()
        .map(|p| (Experiment::Locality, p.family.as_str()))
        .collect();
    let (bottom, top) = trained_extent(analysis, &families);
    MinDimFigure {
        title: format!("{base} at L = {length}: minimal dimension against locality"),
        x_desc: "locality m (window or band)",
        x_log: false,
        curves,
        top,
        bottom,
        sqrt_reference: false,
    }
    .draw(stem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{lis, local_lis, run, search, solved};
    use crate::profile::ModelChoice::{Linear, Sliding, Sparse, Standard};
    use crate::results::RunRecord;

    fn analyse(records: Vec<RunRecord>) -> Analysis {
        Analysis::new(records, 0.9).expect("fixture records are valid")
    }

    /// Draws every kind of figure of `records` into a fresh directory, checks each file is there
    /// and not empty, and returns how many there are.
    fn draws_every_figure(records: Vec<RunRecord>) -> usize {
        let analysis = analyse(records);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let stem = |name: &str| dir.path().join(name);
        let mut files = Vec::new();
        for (experiment, family) in analysis.families() {
            let name = format!("{experiment}-{family}");
            files.extend(
                heatmap(
                    &analysis,
                    experiment,
                    &family,
                    &[8, 16, 32, 64],
                    &stem(&format!("{name}-heatmap")),
                )
                .expect("the heatmap is drawn"),
            );
            files.extend(
                min_dim_curve(
                    &analysis,
                    experiment,
                    &family,
                    &stem(&format!("{name}-min-dim")),
                )
                .expect("the curve is drawn"),
            );
            files.extend(
                compute_ratios(&analysis, experiment, &stem(&format!("{name}-ratios")))
                    .expect("the ratios are drawn"),
            );
        }
        files.extend(local_vs_general(&analysis, "lis-window2", &stem("local")).expect("drawn"));
        let mut local_lengths: Vec<usize> = analysis
            .all_points()
            .iter()
            .filter(|p| p.locality.is_some())
            .map(|p| p.length)
            .collect();
        local_lengths.sort_unstable();
        local_lengths.dedup();
        for length in local_lengths {
            files.extend(
                min_dim_vs_locality(&analysis, "lis", length, &stem(&format!("m-{length}")))
                    .expect("drawn"),
            );
        }
        for file in &files {
            assert!(
                file.metadata().is_ok_and(|m| m.len() > 0),
                "{file:?} is missing or empty"
            );
        }
        let pngs = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "png"));
        let svgs = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "svg"));
        assert_eq!(pngs.count(), svgs.count(), "both formats of every figure");
        files.len()
    }

    #[test]
    fn figures_with_failed_cells_are_drawn() {
        let mut records = search(&lis(8), Standard, 1, &[(32, 0.95), (16, 0.5)]);
        records.extend(search(&lis(8), Sparse, 1, &[(32, 0.5), (64, 0.6)]));
        records.extend(search(&lis(16), Standard, 1, &[(32, 0.95)]));
        records.extend(search(&lis(16), Sparse, 1, &[(64, 0.5)]));
        records.extend(search(&lis(16), Linear, 1, &[(64, 0.5)]));
        assert_eq!(draws_every_figure(records), 2 * 3, "heatmap, curve, ratios");
    }

    #[test]
    fn figures_of_one_point_and_of_equal_values_are_drawn() {
        assert_eq!(
            draws_every_figure(vec![solved(&lis(8), Standard, 32, 1.0).record()]),
            2 * 3
        );
        // Every model at the same dimension on every size: flat, coinciding curves.
        let mut records = Vec::new();
        for n in [4, 8] {
            for model in [Standard, Sparse, Linear] {
                records.push(solved(&lis(n), model, 16, 100.0).record());
            }
        }
        assert_eq!(draws_every_figure(records), 2 * 3);
    }

    #[test]
    fn locality_figures_with_seeds_that_disagree_are_drawn() {
        let local = |n, m, model, seed, d| {
            run(&local_lis(n, m), model, d)
                .experiment(Experiment::Locality)
                .seed(seed)
                .headline(0.95)
                .record()
        };
        let records = vec![
            local(8, 2, Sliding { window: 4 }, 1, 16),
            local(8, 2, Sliding { window: 4 }, 2, 32),
            local(16, 2, Sliding { window: 4 }, 1, 16),
            local(8, 3, Sliding { window: 4 }, 1, 16),
            solved(&lis(8), Standard, 16, 1.0).record(),
        ];
        // Three families' three figures, local against general, and against m at L = 19, 35.
        assert_eq!(draws_every_figure(records), 2 * (3 * 3 + 1 + 2));
    }

    #[test]
    fn each_curve_names_the_top_of_its_own_grid() {
        // The general task searched up to 48, the local one up to 64; the sparse model fails
        // both at the top.
        let local = |model, d, accuracy| {
            run(&local_lis(8, 2), model, d)
                .experiment(Experiment::Locality)
                .headline(accuracy)
                .record()
        };
        let mut records = vec![local(Standard, 64, 0.95), local(Sparse, 64, 0.5)];
        records.extend(search(&lis(8), Standard, 1, &[(48, 0.95)]));
        records.extend(search(&lis(8), Sparse, 1, &[(48, 0.5)]));
        let analysis = analyse(records);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files =
            local_vs_general(&analysis, "lis-window2", &dir.path().join("local")).expect("drawn");
        let svg = files
            .iter()
            .find(|f| f.extension().is_some_and(|e| e == "svg"))
            .expect("an SVG");
        let text = std::fs::read_to_string(svg).expect("readable");
        let says = |label: &str| {
            text.contains(&format!("&gt; {label}")) || text.contains(&format!("> {label}<"))
        };
        assert!(says("48"), "the general curve's failure is labelled > 48");
        assert!(says("64"), "the local curve's failure is labelled > 64");
        // The general curve is the faded reference: its unsolved label is faded too.
        let opacity_of = |label: &str| {
            let at = text.find(&format!("&gt; {label}")).expect("the label");
            let element = &text[text[..at].rfind("<text").expect("a text element")..at];
            let start = element.find("opacity=\"").expect("an opacity") + "opacity=\"".len();
            let value = &element[start..];
            value[..value.find('"').expect("closed")]
                .parse::<f64>()
                .expect("a number")
        };
        assert!(
            (opacity_of("48") - FADED).abs() < 1e-9,
            "faded like its curve"
        );
        assert_eq!(opacity_of("64"), 1.0);
    }

    #[test]
    fn nothing_to_draw_is_not_an_error() {
        assert_eq!(draws_every_figure(Vec::new()), 0);
    }

    #[test]
    fn the_legend_gets_room_above_the_data_but_the_data_keep_half_the_height() {
        let log_share = |top: f64| (4.0f64.log2() - 0.5f64.log2()) / (top.log2() - 0.5f64.log2());
        // 7 entries, 131 px of a 360 px plot: the data keep the lower 64 %.
        let top = legend_headroom((0.5, 4.0), 7, 360.0);
        assert!(top > 4.0);
        assert!((log_share(top) - (1.0 - 131.0 / 360.0)).abs() < 1e-9);
        // However many entries, the data keep half.
        assert!((log_share(legend_headroom((0.5, 4.0), 40, 360.0)) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn padded_ranges_leave_room_around_the_data() {
        let (lo, hi) = padded_range(&[11.0, 131.0], true, (1.0, 2.0));
        assert!((lo - 11.0 / 1.15).abs() < 1e-9 && (hi - 131.0 * 1.15).abs() < 1e-9);
        assert_eq!(
            padded_range(&[32.0], true, (1.0, 2.0)),
            (32.0 / 1.5, 48.0),
            "one value on a log scale"
        );
        assert_eq!(padded_range(&[0.0, 10.0], false, (1.0, 2.0)), (-0.8, 10.8));
        assert_eq!(
            padded_range(&[3.0, 3.0], false, (1.0, 2.0)),
            (2.0, 4.0),
            "equal values: at least 1 either side"
        );
        assert_eq!(padded_range(&[], true, (1.0, 2.0)), (1.0, 2.0), "no values");
        assert_eq!(
            padded_range(&[0.0, -4.0, f64::NAN], true, (16.0, 32.0)),
            (16.0, 32.0),
            "nothing a log scale can show"
        );
        let (lo, _) = padded_range(&[0.0, 8.0], true, (1.0, 2.0));
        assert_eq!(lo, 8.0 / 1.5, "a log scale skips 0");
    }

    #[test]
    fn nudges_are_centred_and_keep_series_apart() {
        let axes = Axes::fitting(&[10.0, 100.0], &[16.0], true);
        let nudges: Vec<f64> = (0..3).map(|k| axes.nudge(k, 3)).collect();
        assert_eq!(nudges[1], 0.0, "the middle series stays put");
        assert!(nudges[0] < 0.0 && nudges[2] > 0.0 && (nudges[0] + nudges[2]).abs() < 1e-12);
        assert_eq!(axes.nudge(0, 1), 0.0, "a single series stays put");
        let swept = axes.sweep_x(3);
        assert!((swept[0] - axes.x.0).abs() < 1e-9 && (swept[2] - axes.x.1).abs() < 1e-9);
        assert!(
            (swept[1] - (axes.x.0 * axes.x.1).sqrt()).abs() < 1e-9,
            "evenly spread on the log scale: {swept:?}"
        );
    }

    #[test]
    fn modern_figures_draw_the_paper_models_faded_behind() {
        use crate::profile::ModelChoice::{Gla, Mamba};
        let modern = |n, model, d| {
            solved(&lis(n), model, d, 1.0)
                .experiment(Experiment::Modern)
                .record()
        };
        let records = vec![
            solved(&lis(8), Standard, 16, 1.0).record(),
            solved(&lis(16), Standard, 16, 1.0).record(),
            solved(&lis(8), Sparse, 32, 1.0).record(),
            modern(8, Gla, 32),
            modern(16, Gla, 64),
            modern(8, Mamba, 16),
        ];
        let analysis = analyse(records.clone());
        let (curves, experiments) = min_dim_curves(&analysis, Experiment::Modern, "lis");
        let labels: Vec<(&str, bool)> =
            curves.iter().map(|c| (c.label.as_str(), c.faded)).collect();
        assert_eq!(
            labels,
            [
                ("standard (paper's)", true),
                ("sparse (paper's)", true),
                ("gla", false),
                ("mamba", false),
            ]
        );
        assert_eq!(experiments, [Experiment::Modern, Experiment::General]);
        // General figures are unchanged: no modern curve there.
        let (general, _) = min_dim_curves(&analysis, Experiment::General, "lis");
        assert!(general
            .iter()
            .all(|c| !c.faded && c.model.family() != Gla.family()));
        // Heatmap, curve and ratios of both experiments' families.
        assert_eq!(draws_every_figure(records), 2 * 3 * 2);
    }

    #[test]
    fn a_curve_keeps_solved_spreads_and_unsolved_sizes_apart() {
        let mut records = search(&lis(8), Sparse, 1, &[(16, 0.95)]);
        records.extend(search(&lis(8), Sparse, 2, &[(32, 0.95), (16, 0.5)]));
        records.extend(search(&lis(16), Sparse, 1, &[(64, 0.5)]));
        records.extend(search(&lis(32), Standard, 1, &[(64, 0.95)]));
        let analysis = analyse(records);
        let points = analysis.points(Experiment::General, "lis");
        let at_length = points.iter().map(|p| (p.length as f64, p));
        let curve = MinDimCurve::of(&analysis, Sparse, at_length, "sparse".into(), false);
        assert_eq!(curve.means(), vec![(19.0, 24.0)]);
        assert!(curve.solved[0].1.varies());
        assert_eq!(curve.unsolved, vec![35.0], "lis-32 was not run for sparse");
        let figure = MinDimFigure {
            title: String::new(),
            x_desc: "",
            x_log: true,
            curves: vec![curve],
            top: 64.0,
            bottom: 16.0,
            sqrt_reference: true,
        };
        let axes = figure.axes();
        assert!(
            axes.y.1 >= 64.0 * UNSOLVED_HEADROOM && axes.y.0 < 16.0,
            "room for the unsolved marker above the grid: {axes:?}"
        );
        assert!(
            axes.x.0 < 19.0 && axes.x.0 > 10.0 && axes.x.1 > 35.0,
            "{axes:?}"
        );
        assert_eq!(
            figure.sqrt_anchor(),
            Some((19.0, 24.0)),
            "no standard curve: the median solved point"
        );
    }
}
