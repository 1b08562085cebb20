//! Progress bars, one helper for the whole toolkit: every long step draws the same way, and
//! nothing is drawn when asked to be quiet or when stderr is not a terminal (logs stay clean).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items of `what` (examples generated, checked, …) with rate and ETA.
pub fn counter(len: u64, what: &str, quiet: bool) -> ProgressBar {
    let bar = styled(
        len,
        "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        quiet,
    );
    bar.set_message(what.to_string());
    bar
}

/// The training loop's bar: `done` of `steps` steps, the loss and the last evaluation in its
/// message.
pub fn training(steps: usize, done: usize, quiet: bool) -> ProgressBar {
    let bar = styled(
        steps as u64,
        "train [{bar:30}] {pos}/{len} {msg} (eta {eta})",
        quiet,
    );
    bar.set_position(done as u64);
    bar
}

/// A sweep's bar over its planned runs (an estimate: bisection decides as it goes); it ticks
/// every second so that the elapsed time moves during a long run.
pub fn sweep(planned: usize, quiet: bool) -> ProgressBar {
    let bar = styled(
        planned as u64,
        "sweep [{bar:30}] {pos}/~{len} runs, {elapsed} elapsed, eta {eta}: {msg}",
        quiet,
    );
    if !quiet {
        bar.enable_steady_tick(std::time::Duration::from_secs(1));
    }
    bar
}

fn styled(len: u64, template: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(template)
        .expect("the templates above are valid")
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_bars_are_hidden_and_count_all_the_same() {
        for bar in [
            counter(10, "x", true),
            training(10, 3, true),
            sweep(10, true),
        ] {
            assert!(bar.is_hidden());
            bar.inc(1);
        }
        assert_eq!(training(10, 3, true).position(), 3);
    }
}
