//! `dpcot report`: report.md, tables and figures from the records of results directories.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use dpcot_analysis::profile::Profile;
use dpcot_analysis::results::Results;

#[derive(Args)]
pub struct ReportArgs {
    /// The profile the results were produced with, a built-in name or a file [default: the
    /// copy a sweep keeps in the first results directory].
    #[arg(long)]
    profile: Option<String>,
    /// Results directories (shards of one sweep are merged).
    #[arg(long, required = true, num_args = 1..)]
    results: Vec<PathBuf>,
    /// Where to write report.md, figures/ and tables/ [default: the first results directory].
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let results: Vec<Results> = args.results.iter().map(Results::new).collect();
    let profile = match &args.profile {
        Some(name_or_path) => Profile::named_or_load(name_or_path)?,
        None => Profile::load(&results[0].profile())?,
    };
    let out = args.out.unwrap_or_else(|| args.results[0].clone());
    write(&profile, &results, &out)
}

/// Writes the report of `results` into `out` and says where it is.
pub fn write(profile: &Profile, results: &[Results], out: &Path) -> Result<()> {
    let files = dpcot_analysis::report::write_report(profile, results, out)?;
    println!(
        "{} ({} figures, {} tables)",
        files.report.display(),
        files.figures.len(),
        files.tables.len()
    );
    Ok(())
}
