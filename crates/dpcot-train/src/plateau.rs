//! The plateau rule: when validation accuracy has stopped improving.

use serde::{Deserialize, Serialize};

/// The validation history the plateau rule needs, carried in checkpoints so a resumed run
/// judges exactly as an uninterrupted one.
///
/// The rule: an evaluation *gains* when its accuracy beats the best gaining accuracy so far by
/// more than `min_delta` (the first evaluation always gains). The run has plateaued once the
/// last `patience` evaluations have all failed to gain. A slow but steady rise still gains
/// once its total over the window exceeds `min_delta`, because each evaluation is compared
/// with the last gain, not with its predecessor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// The accuracy of the last evaluation that gained.
    pub best: f64,
    /// Evaluations since the last gain.
    pub since_gain: usize,
    /// Evaluations recorded.
    pub evaluations: usize,
}

impl Plateau {
    /// Records an evaluation's accuracy.
    pub fn record(&mut self, accuracy: f64, min_delta: f64) {
        if self.evaluations == 0 || accuracy > self.best + min_delta {
            self.best = accuracy;
            self.since_gain = 0;
        } else {
            self.since_gain += 1;
        }
        self.evaluations += 1;
    }

    /// Whether the last `patience` evaluations all failed to gain.
    pub fn reached(&self, patience: usize) -> bool {
        self.since_gain >= patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(accuracies: &[f64]) -> Plateau {
        let mut plateau = Plateau::default();
        for &a in accuracies {
            plateau.record(a, 0.01);
        }
        plateau
    }

    #[test]
    fn flat_accuracy_plateaus_after_patience_evaluations() {
        assert!(!history(&[0.3, 0.3, 0.3, 0.3]).reached(4));
        assert!(history(&[0.3, 0.3, 0.3, 0.3, 0.3]).reached(4));
        assert!(history(&[0.0; 5]).reached(4), "never learning is a plateau");
    }

    #[test]
    fn a_gain_restarts_the_window() {
        let p = history(&[0.3, 0.3, 0.3, 0.3, 0.5, 0.5]);
        assert_eq!(p.since_gain, 1);
        assert!(!p.reached(4));
        assert_eq!(p.best, 0.5);
    }

    #[test]
    fn gains_within_min_delta_do_not_count_but_a_slow_rise_does() {
        // +0.006 per evaluation: each step alone is below min_delta, but every second one is
        // more than 0.01 above the last gain.
        let rising: Vec<f64> = (0..12).map(|i| 0.5 + 0.006 * i as f64).collect();
        assert!(!history(&rising).reached(2));
        // Noise around a level never gains.
        assert!(history(&[0.5, 0.505, 0.498, 0.509, 0.502]).reached(4));
    }

    #[test]
    fn a_drop_is_not_a_gain() {
        assert!(history(&[0.8, 0.6, 0.7, 0.75, 0.79]).reached(4));
    }
}
