//! The plateau rule: when validation accuracy has stopped improving.

use serde::{Deserialize, Serialize};

/// The validation history the plateau rule needs, carried in checkpoints so a resumed run
/// judges exactly as an uninterrupted one.
///
/// The rule: accuracy has *stalled* when the least-squares line through the last `window`
/// evaluations rises by no more than `min_delta` from the first of them to the last. A trend,
/// not a record: an accuracy measured on a few hundred examples moves by several points from
/// one evaluation to the next, so a run that rises by 5 points per 1000 steps often goes three
/// evaluations without beating its best, and the earlier rule (no new best by more than
/// `min_delta` for `window` evaluations) called such runs plateaued. Of the quick profile's
/// LIS runs it had called plateaued, the trend over their last 2000 steps was 2–14 points per
/// 1000 steps (docs/training.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Every evaluation so far: (step, validation accuracy).
    #[serde(default)]
    pub history: Vec<(usize, f64)>,
}

impl Plateau {
    /// Records an evaluation's accuracy at `step`.
    pub fn record(&mut self, step: usize, accuracy: f64) {
        self.history.push((step, accuracy));
    }

    /// The rise of the least-squares line through the last `window` evaluations, from the
    /// step of the first to the step of the last; `None` with fewer than `window` (or two)
    /// evaluations, or if they share one step.
    pub fn trend_gain(&self, window: usize) -> Option<f64> {
        let window = window.max(2);
        let recent = self
            .history
            .get(self.history.len().checked_sub(window)?..)?;
        let n = recent.len() as f64;
        let mean_step = recent.iter().map(|&(s, _)| s as f64).sum::<f64>() / n;
        let mean_accuracy = recent.iter().map(|&(_, a)| a).sum::<f64>() / n;
        let (sxx, sxy) = recent.iter().fold((0.0, 0.0), |(sxx, sxy), &(s, a)| {
            let dx = s as f64 - mean_step;
            (sxx + dx * dx, sxy + dx * (a - mean_accuracy))
        });
        let span = (recent[recent.len() - 1].0 - recent[0].0) as f64;
        (sxx > 0.0).then(|| sxy / sxx * span)
    }

    /// Whether accuracy has stalled over the last `window` evaluations (the type's docs);
    /// never with fewer evaluations than that.
    pub fn stalled(&self, window: usize, min_delta: f64) -> bool {
        self.trend_gain(window)
            .is_some_and(|gain| gain <= min_delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Evaluations every 200 steps.
    fn history(accuracies: &[f64]) -> Plateau {
        let mut plateau = Plateau::default();
        for (i, &a) in accuracies.iter().enumerate() {
            plateau.record(200 * (i + 1), a);
        }
        plateau
    }

    #[test]
    fn flat_accuracy_stalls_once_the_window_is_full() {
        assert!(!history(&[0.3; 3]).stalled(4, 0.01), "too few evaluations");
        assert!(history(&[0.3; 4]).stalled(4, 0.01));
        assert!(history(&[0.0; 5]).stalled(4, 0.01), "never learning stalls");
    }

    #[test]
    fn a_slow_rise_is_improving_and_a_drop_is_not() {
        // +0.006 per evaluation: 0.042 over a window of 8.
        let rising: Vec<f64> = (0..12).map(|i| 0.5 + 0.006 * i as f64).collect();
        assert!(!history(&rising).stalled(8, 0.01));
        let gain = history(&rising).trend_gain(8).unwrap();
        assert!((gain - 0.042).abs() < 1e-9, "{gain}");
        assert!(history(&[0.8, 0.6, 0.7, 0.75, 0.79, 0.6, 0.55, 0.6]).stalled(8, 0.01));
    }

    #[test]
    fn a_noisy_rise_that_the_record_rule_called_a_plateau_is_improving() {
        // The sparse model on LIS, L = 15, d = 32, seed 1, quick profile (validation accuracy
        // every 200 steps up to 5200): no new best by 1 point in its last 3 evaluations, so
        // the earlier rule called it plateaued; it rose by 10 points over its last 2000 steps.
        let curve = [
            0.72, 0.76, 0.72, 0.74, 0.785, 0.78, 0.76, 0.815, 0.775, 0.825, 0.855, 0.79, 0.875,
            0.89, 0.81, 0.865, 0.885,
        ];
        let run = history(&curve);
        assert!(!run.stalled(8, 0.01), "{:?}", run.trend_gain(8));
        assert!(run.trend_gain(10).unwrap() > 0.05);
    }

    proptest! {
        /// Noise around a level never shows a trend larger than the noise allows, and adding a
        /// linear rise adds exactly that rise to the trend (the fit is linear in the data).
        #[test]
        fn the_trend_is_linear_in_the_accuracies(
            noise in prop::collection::vec(-0.02f64..0.02, 8),
            rise in 0.0f64..0.5,
        ) {
            let level: Vec<f64> = noise.iter().map(|e| 0.5 + e).collect();
            let rising: Vec<f64> = level
                .iter()
                .enumerate()
                .map(|(i, a)| a + rise * i as f64 / 7.0)
                .collect();
            let base = history(&level).trend_gain(8).unwrap();
            // Steps 0..7 around their mean: Σ|dx| = 16, Σdx² = 42, a span of 7.
            prop_assert!(base.abs() <= 0.02 * 16.0 / 42.0 * 7.0 + 1e-12, "{}", base);
            let gain = history(&rising).trend_gain(8).unwrap();
            prop_assert!((gain - base - rise).abs() < 1e-9, "{} vs {} + {}", gain, base, rise);
        }
    }
}
