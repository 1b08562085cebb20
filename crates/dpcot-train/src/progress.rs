//! Progress bars, styled alike across the workspace.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps drawn with the indicatif `template` (`{bar:30}` is drawn with `=> `),
/// or a hidden one when `quiet`, so callers update it the same way either way.
///
/// ```
/// let bar = dpcot_train::progress::bar(100, "train [{bar:30}] {pos}/{len} {msg}", true);
/// bar.inc(1);
/// bar.finish_and_clear();
/// ```
///
/// # Panics
///
/// If `template` is not a valid indicatif template (a bug in the caller, not a user error).
pub fn bar(len: u64, template: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid progress bar template")
            .progress_chars("=> "),
    );
    bar
}
