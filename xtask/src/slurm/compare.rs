//! What must come out the same whether a profile runs on one machine or as shards of a Slurm
//! array: every run's record and the report's tables, less what is measured rather than
//! computed (times, memory).
//!
//! Runs are bit-exact by seed on one backend, so everything else is: minimal dimensions, steps,
//! accuracies, FLOP and parameter counts and the ratios made of them. Which fields are measured
//! was found by running the smoke profile twice on one machine and diffing the two results
//! directories (docs/scale-out.md, "Tested"): exactly the ones listed below differed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// Fields of a record (`records/<id>.json`, dpcot-analysis's `RunRecord`) that are measured on
/// the machine that trained the run, so differ from one run of it to the next; and the record's
/// seal (`crc32`, a checksum of the whole file), which covers them.
const MEASURED_FIELDS: &[&[&str]] = &[
    &["crc32"],
    &["wall_seconds"],
    &["summary", "train_seconds"],
    &["summary", "train_tokens_per_second"],
    &["summary", "peak_memory_bytes"],
    &["summary", "eval", "decode_seconds"],
    &["summary", "eval", "decode_tokens_per_second"],
    &["summary", "validation", "decode_seconds"],
    &["summary", "validation", "decode_tokens_per_second"],
];

/// The report's tables (`tables/<name>`) and their measured columns; every other column is
/// compared.
const TABLES: &[(&str, &[&str])] = &[
    ("min_dims.csv", &[]),
    (
        "compute.csv",
        &[
            "decode_seconds_per_token",
            "time_ratio",
            "peak_memory_bytes",
            "train_seconds",
        ],
    ),
    ("growth.csv", &[]),
    (
        "runs.csv",
        &["train_seconds", "decode_seconds_per_token", "wall_seconds"],
    ),
];

/// The records and report tables of a results directory, measured values left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Each record by run id.
    records: BTreeMap<String, Value>,
    /// Each table by file name.
    tables: BTreeMap<String, Table>,
}

/// A CSV table without its measured columns.
#[derive(Debug, Clone, PartialEq)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Outcome {
    /// Reads `records/*.json` and the report's tables of the results directory `results`.
    pub fn load(results: &Path) -> Result<Self> {
        let records_dir = results.join("records");
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&records_dir)
            .with_context(|| format!("reading {}", records_dir.display()))?
        {
            let path = entry?.path();
            // Records are written atomically; a temporary file left by a kill has no extension.
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let id = path
                .file_stem()
                .context("a record has a name")?
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            records.push((id, text));
        }
        ensure!(
            !records.is_empty(),
            "no records in {}",
            records_dir.display()
        );
        let mut tables = Vec::new();
        for (name, _) in TABLES {
            let path = results.join("tables").join(name);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (written by the report)", path.display()))?;
            tables.push((name.to_string(), text));
        }
        Self::from_texts(records, tables)
            .with_context(|| format!("reading the results in {}", results.display()))
    }

    /// From records (run id, JSON) and tables (file name, CSV) as the files hold them.
    fn from_texts(
        records: impl IntoIterator<Item = (String, String)>,
        tables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let records = records
            .into_iter()
            .map(|(id, text)| {
                let mut record: Value = serde_json::from_str(&text)
                    .with_context(|| format!("records/{id}.json is not JSON"))?;
                for path in MEASURED_FIELDS {
                    remove(&mut record, path);
                }
                Ok((id, record))
            })
            .collect::<Result<_>>()?;
        let tables = tables
            .into_iter()
            .map(|(name, text)| {
                let measured = TABLES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(&[][..], |(_, measured)| measured);
                let table = Table::parse(&text, measured)
                    .with_context(|| format!("reading tables/{name}"))?;
                Ok((name, table))
            })
            .collect::<Result<_>>()?;
        Ok(Self { records, tables })
    }

    /// How many records it holds.
    pub fn runs(&self) -> usize {
        self.records.len()
    }

    /// The same outcome with one computed field of one record changed (the first record's
    /// steps, plus one): what [`differences`] must notice.
    pub fn with_one_record_changed(&self) -> Result<Self> {
        let mut changed = self.clone();
        let record = changed
            .records
            .values_mut()
            .next()
            .context("no records to change")?;
        let steps = record
            .pointer_mut("/summary/steps")
            .context("a record without summary.steps")?;
        *steps = Value::from(steps.as_u64().context("summary.steps is not a count")? + 1);
        Ok(changed)
    }
}

/// Removes the field at `path` of `value`, if there is one.
fn remove(value: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for key in parents {
        match node.get_mut(*key) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(object) = node.as_object_mut() {
        object.remove(*last);
    }
}

impl Table {
    /// Parses a report table (comma-separated; the report's cells hold no commas) and drops its
    /// `measured` columns, each of which must be there.
    fn parse(text: &str, measured: &[&str]) -> Result<Self> {
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().context("empty table")?.split(',').collect();
        let mut keep = vec![true; header.len()];
        for column in measured {
            let Some(i) = header.iter().position(|h| h == column) else {
                bail!(
                    "no column `{column}`: the report's tables changed, so the list of measured \
                     columns in xtask/src/slurm/compare.rs needs updating"
                );
            };
            keep[i] = false;
        }
        let select = |cells: Vec<&str>| -> Vec<String> {
            cells
                .into_iter()
                .zip(&keep)
                .filter(|(_, keep)| **keep)
                .map(|(cell, _)| cell.to_string())
                .collect()
        };
        let mut rows = Vec::new();
        for (n, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            ensure!(
                cells.len() == header.len(),
                "row {} has {} cells, the header {}",
                n + 1,
                cells.len(),
                header.len()
            );
            rows.push(select(cells));
        }
        Ok(Self {
            header: select(header),
            rows,
        })
    }
}

/// Where `other` differs from `reference`, one line each (empty when they agree).
pub fn differences(reference: &Outcome, other: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    for id in union(&reference.records, &other.records) {
        match (reference.records.get(id), other.records.get(id)) {
            (Some(a), Some(b)) => json_differences(&format!("records/{id}.json: "), a, b, &mut out),
            (Some(_), None) => out.push(format!("records/{id}.json: only in the reference")),
            (None, Some(_)) => out.push(format!("records/{id}.json: not in the reference")),
            (None, None) => unreachable!("the id comes from one of them"),
        }
    }
    for name in union(&reference.tables, &other.tables) {
        match (reference.tables.get(name), other.tables.get(name)) {
            (Some(a), Some(b)) => table_differences(name, a, b, &mut out),
            (Some(_), None) => out.push(format!("tables/{name}: only in the reference")),
            (None, Some(_)) => out.push(format!("tables/{name}: not in the reference")),
            (None, None) => unreachable!("the name comes from one of them"),
        }
    }
    out
}

fn union<'a, V>(a: &'a BTreeMap<String, V>, b: &'a BTreeMap<String, V>) -> BTreeSet<&'a String> {
    a.keys().chain(b.keys()).collect()
}

/// The fields where `b` differs from `a`, as `prefix` + dotted path.
fn json_differences(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let path = format!("{prefix}{key}");
                match (x.get(key), y.get(key)) {
                    (Some(a), Some(b)) => json_differences(&format!("{path}."), a, b, out),
                    (Some(_), None) => out.push(format!("{path}: only in the reference")),
                    (None, Some(_)) => out.push(format!("{path}: not in the reference")),
                    (None, None) => unreachable!("the key comes from one of them"),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (a, b)) in x.iter().zip(y).enumerate() {
                json_differences(
                    &format!("{}[{i}].", prefix.trim_end_matches('.')),
                    a,
                    b,
                    out,
                );
            }
        }
        _ if a != b => out.push(format!(
            "{}: {a} in the reference, {b} here",
            prefix.trim_end_matches('.')
        )),
        _ => {}
    }
}

fn table_differences(name: &str, a: &Table, b: &Table, out: &mut Vec<String>) {
    if a.header != b.header {
        out.push(format!(
            "tables/{name}: columns {} in the reference, {} here",
            a.header.join(","),
            b.header.join(",")
        ));
        return;
    }
    for (n, (x, y)) in a.rows.iter().zip(&b.rows).enumerate() {
        for ((column, p), q) in a.header.iter().zip(x).zip(y) {
            if p != q {
                // The leading cells name the row (experiment, task, length, model; or the id).
                let row: Vec<&str> = x.iter().take(4).map(String::as_str).collect();
                out.push(format!(
                    "tables/{name}, row {} ({}): {column} is {p:?} in the reference, {q:?} here",
                    n + 1,
                    row.join(",")
                ));
            }
        }
    }
    if a.rows.len() != b.rows.len() {
        out.push(format!(
            "tables/{name}: {} rows in the reference, {} here",
            a.rows.len(),
            b.rows.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of the smoke profile, as `dpcot sweep` wrote it.
    const RECORD: &str = r#"{
  "key": {"experiment": "general", "task": {"task": "lis", "length": 3, "range": 16},
          "model": "standard", "d_model": 8, "seed": 1},
  "config": {"task": {"task": "lis", "length": 3, "range": 16},
             "model": {"vocab_size": 19, "max_len": 10, "d_model": 8, "n_layers": 2,
                       "n_heads": 2, "dropout": 0.0, "attention": {"kind": "softmax"}},
             "train": {"steps": 150, "batch_size": 16, "learning_rate": 0.003, "seed": 1},
             "data": {"source": "generated", "train": 256, "validation": 32, "test": 32,
                      "seed": 1}},
  "summary": {"task": "lis-3", "attention": "softmax", "d_model": 8, "backend": "flex",
              "steps": 100, "reached_target": true, "parameters": 2099,
              "train_seconds": 0.5261602, "train_tokens": 14400,
              "train_tokens_per_second": 27368.09, "train_flops": 225115200.0,
              "decode_flops_per_token": 4917.0, "peak_memory_bytes": 23474176,
              "eval": {"examples": 32, "headline": 0.5, "answer_accuracy": 0.5,
                       "first_wrong_step": [0, 9, 7], "decode_tokens": 192,
                       "decode_seconds": 0.008225036, "decode_tokens_per_second": 23343.36},
              "validation": {"examples": 32, "headline": 0.375,
                             "decode_seconds": 0.002362644,
                             "decode_tokens_per_second": 81264.89},
              "ending": "passed"},
  "wall_seconds": 0.583243202
}"#;

    const MIN_DIMS: &str =
        "experiment,task,length,model,min_dim_mean,min_dim_min,min_dim_max,seeds,unsolved
general,lis-3,9,standard,8.0,8,8,1,
general,lis-4,11,standard,16.0,16,16,1,
";

    const COMPUTE: &str = "experiment,task,length,model,min_dim,parameters,decode_flops_per_token,flops_ratio,decode_seconds_per_token,time_ratio,peak_memory_bytes,train_flops,train_seconds,train_steps
general,lis-3,9,standard,8,2099,4.9170e3,1.0000,4.2839e-5,1.0000,23474176,2.2512e8,0.53,100
";

    /// An outcome from the record and tables above, each text passed through `edit` first.
    fn outcome(edit: impl Fn(&str) -> String) -> Outcome {
        Outcome::from_texts(
            [("general-lis-3-standard-d8-s1".to_string(), edit(RECORD))],
            [
                ("min_dims.csv".to_string(), edit(MIN_DIMS)),
                ("compute.csv".to_string(), edit(COMPUTE)),
            ],
        )
        .unwrap()
    }

    fn unchanged() -> Outcome {
        outcome(str::to_string)
    }

    #[test]
    fn measured_values_may_differ() {
        let edit = |text: &str| {
            text.replace("0.5261602", "0.71")
                .replace("23474176", "25571328")
                .replace("0.008225036", "0.01")
                .replace("81264.89", "60000.0")
                .replace("0.583243202", "0.9")
                .replace("4.2839e-5,1.0000,", "3.9e-5,0.9000,")
                .replace(",0.53,", ",0.61,")
        };
        assert_ne!(edit(RECORD), RECORD);
        assert_ne!(edit(COMPUTE), COMPUTE);
        assert_eq!(
            differences(&unchanged(), &outcome(edit)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_changed_record_is_a_difference() {
        let other = outcome(|text| text.replace("\"steps\": 100", "\"steps\": 150"));
        assert_eq!(
            differences(&unchanged(), &other),
            ["records/general-lis-3-standard-d8-s1.json: summary.steps: 100 in the reference, 150 here"]
        );
        let other = outcome(|text| text.replace("[0, 9, 7]", "[0, 9, 8]"));
        assert_eq!(
            differences(&unchanged(), &other),
            ["records/general-lis-3-standard-d8-s1.json: summary.eval.first_wrong_step[2]: 7 in the reference, 8 here"]
        );
        let changed = unchanged().with_one_record_changed().unwrap();
        assert_eq!(differences(&unchanged(), &changed).len(), 1);
    }

    #[test]
    fn a_missing_record_is_a_difference() {
        let mut other = unchanged();
        other.records.clear();
        assert_eq!(
            differences(&unchanged(), &other),
            ["records/general-lis-3-standard-d8-s1.json: only in the reference"]
        );
    }

    #[test]
    fn a_changed_or_missing_table_row_is_a_difference() {
        let other = outcome(|text| text.replace("16.0,16,16", "8.0,8,8"));
        assert_eq!(
            differences(&unchanged(), &other),
            [
                "tables/min_dims.csv, row 2 (general,lis-4,11,standard): min_dim_mean is \"16.0\" in the reference, \"8.0\" here",
                "tables/min_dims.csv, row 2 (general,lis-4,11,standard): min_dim_min is \"16\" in the reference, \"8\" here",
                "tables/min_dims.csv, row 2 (general,lis-4,11,standard): min_dim_max is \"16\" in the reference, \"8\" here",
            ]
        );
        let other = outcome(|text| text.replace("general,lis-4,11,standard,16.0,16,16,1,\n", ""));
        assert_eq!(
            differences(&unchanged(), &other),
            ["tables/min_dims.csv: 2 rows in the reference, 1 here"]
        );
        let other = outcome(|text| text.replace("2.2512e8", "2.2513e8"));
        assert_eq!(differences(&unchanged(), &other).len(), 1);
    }

    #[test]
    fn a_table_without_a_measured_column_is_an_error() {
        let renamed = COMPUTE.replace("time_ratio", "seconds_ratio");
        let err = Outcome::from_texts([], [("compute.csv".to_string(), renamed)]).unwrap_err();
        assert!(
            format!("{err:#}").contains("no column `time_ratio`"),
            "{err:#}"
        );
    }
}
