//! Atomic file writes, the one implementation for the whole workspace, and sealed JSON.
//!
//! A file is written to a temporary file in its own directory, synced, then renamed over the
//! target, so a reader sees either the old file or the whole new one, never half of it; a
//! failed write leaves the old file as it was. A *sealed* JSON file or line carries the CRC-32
//! of its own text ([`write_json_sealed`], [`sealed_line`]), so that reading it back
//! ([`read_json_sealed`], [`read_sealed_line`]) tells any change made after it was written.
//! The functions return a bare [`std::io::Error`] (or [`SealedReadError`]): each crate maps it
//! into its own error variant that names the path.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("runs/one/summary.json");
//! dpcot_tasks::atomic::write_json_atomic(&path, &serde_json::json!({ "steps": 3 }))?;
//! assert_eq!(std::fs::read_to_string(&path)?, "{\n  \"steps\": 3\n}\n");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Writes `bytes` to `path` atomically, creating the parent directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// Writes `value` to `path` atomically as pretty-printed JSON with a trailing newline,
/// creating the parent directory if needed.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// The field of a sealed JSON file ([`write_json_sealed`]) that holds its CRC-32.
pub const SEAL_FIELD: &str = "crc32";

/// The seal's field as it is written, before its value: `"crc32":`.
const SEAL_KEY: &str = "\"crc32\":";

/// The seal's value while the checksum is taken: eight hex digits of zero.
const SEAL_PLACEHOLDER: &str = "00000000";

/// Writes `value`, which must serialise to a JSON object, like [`write_json_atomic`] with one
/// more field, [`SEAL_FIELD`]: the CRC-32 (eight hex digits) of the file's own text with those
/// digits zeroed. The file stays plain JSON (for `jq` and people), and [`read_json_sealed`]
/// tells any change made to it after it was written, a flipped digit included.
pub fn write_json_sealed<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    write_atomic(path, seal(value, true)?.as_bytes())
}

/// `value` as one line of compact JSON (no newline) with its seal, for logs of sealed lines;
/// [`read_sealed_line`] reads it back.
pub fn sealed_line<T: Serialize + ?Sized>(value: &T) -> std::io::Result<String> {
    seal(value, false)
}

/// `value` (a JSON object) with the seal field added, its checksum taken over the whole text:
/// pretty-printed with a final newline (a file), or compact on one line without one (a line).
fn seal<T: Serialize + ?Sized>(value: &T, pretty: bool) -> std::io::Result<String> {
    let Value::Object(mut object) = serde_json::to_value(value)? else {
        return Err(std::io::Error::other("only a JSON object can be sealed"));
    };
    object.insert(SEAL_FIELD.into(), SEAL_PLACEHOLDER.into());
    let mut text = if pretty {
        serde_json::to_string_pretty(&object)?
    } else {
        serde_json::to_string(&object)?
    };
    if pretty {
        text.push('\n');
    }
    let at = seal_value(&text).expect("the seal was just written");
    let crc = format!("{:08x}", crc32fast::hash(text.as_bytes()));
    text.replace_range(at, &crc);
    Ok(text)
}

/// Where the seal's eight hex digits are in `text`, if it holds exactly one seal.
fn seal_value(text: &str) -> Option<std::ops::Range<usize>> {
    let name = text.find(SEAL_KEY)?;
    if text[name + SEAL_KEY.len()..].contains(SEAL_KEY) {
        return None;
    }
    let after = &text[name + SEAL_KEY.len()..];
    let value = after.trim_start().strip_prefix('"')?;
    let start = text.len() - value.len();
    let digits = value.get(..SEAL_PLACEHOLDER.len())?;
    value[digits.len()..]
        .starts_with('"')
        .then_some(start..start + digits.len())
}

/// Why a sealed JSON file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SealedReadError {
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not JSON, or not of the expected shape.
    #[error("not what was written: {0}")]
    Json(#[from] serde_json::Error),
    /// The file parses but was changed after it was written.
    #[error("checksum mismatch: the file was changed after it was written")]
    Checksum,
}

/// Reads a file written by [`write_json_sealed`], checking its seal. A file without the seal
/// field (written before files were sealed, or by hand) is read as it is, unless it has a
/// field whose name is the seal's with one byte changed: a damaged seal.
pub fn read_json_sealed<T: DeserializeOwned>(path: &Path) -> Result<T, SealedReadError> {
    let text = String::from_utf8(std::fs::read(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    unseal(&text)
}

/// Reads one line written by [`sealed_line`] (without its newline), checking its seal.
pub fn read_sealed_line<T: DeserializeOwned>(line: &str) -> Result<T, SealedReadError> {
    unseal(line)
}

fn unseal<T: DeserializeOwned>(text: &str) -> Result<T, SealedReadError> {
    let mut value: Value = serde_json::from_str(text)?;
    if let Value::Object(object) = &mut value {
        let damaged_name = |key: &String| {
            key.len() == SEAL_FIELD.len()
                && key
                    .bytes()
                    .zip(SEAL_FIELD.bytes())
                    .filter(|(a, b)| a != b)
                    .count()
                    == 1
        };
        if object.keys().any(damaged_name) {
            return Err(SealedReadError::Checksum);
        }
        if let Some(seal) = object.remove(SEAL_FIELD) {
            let at = seal_value(text).ok_or(SealedReadError::Checksum)?;
            let mut unsealed = text.to_string();
            unsealed.replace_range(at.clone(), SEAL_PLACEHOLDER);
            let expected = format!("{:08x}", crc32fast::hash(unsealed.as_bytes()));
            if seal.as_str() != Some(expected.as_str()) || text[at] != expected {
                return Err(SealedReadError::Checksum);
            }
        }
    }
    Ok(serde_json::from_value(value)?)
}

/// Writes `path` atomically from what `body` writes into a buffered writer, for files too large
/// to hold in memory twice; creates the parent directory if needed. If `body` fails, the old
/// file is left as it was and the temporary file is removed.
pub fn write_atomic_with(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // The temporary path deletes its file when dropped, i.e. on every early return below.
    let (file, temporary) = temporary_file().tempfile_in(dir)?.into_parts();
    let mut out = BufWriter::new(file);
    body(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    temporary.persist(path).map_err(|e| e.error)
}

/// Temporary files are created as `File::create` creates files (0666 less the umask, so
/// 0644 usually), not tempfile's private 0600: results on a shared cluster directory must be
/// readable by the group like every other file there.
fn temporary_file() -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"new",
            "the second write wins"
        );
        assert_eq!(files_in(dir.path()), ["a.txt"], "no temporary file is left");
    }

    #[test]
    fn write_creates_missing_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/y/z.txt");
        write_atomic(&path, b"deep").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"deep");
    }

    #[test]
    fn json_is_pretty_with_a_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        write_json_atomic(&path, &serde_json::json!({ "a": [1, 2] })).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n");
    }

    #[test]
    fn a_failing_body_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |out| {
            out.write_all(b"half a fi")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full", "the body's error is returned");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"old",
            "the old file survives"
        );
        assert_eq!(
            files_in(dir.path()),
            ["a.txt"],
            "the temporary file is removed"
        );
    }

    #[test]
    fn a_parent_that_is_a_file_is_an_error_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        write_atomic(&blocker, b"old").unwrap();
        assert!(write_atomic(&blocker.join("child.txt"), b"new").is_err());
        assert_eq!(
            std::fs::read(&blocker).unwrap(),
            b"old",
            "the file is untouched"
        );
        assert_eq!(files_in(dir.path()), ["blocker"]);
    }

    #[test]
    fn a_target_that_is_a_directory_is_an_error_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside.txt"), b"old").unwrap();
        assert!(write_atomic(&target, b"new").is_err());
        assert!(target.is_dir(), "the directory is still there");
        assert_eq!(std::fs::read(target.join("inside.txt")).unwrap(), b"old");
        assert_eq!(
            files_in(dir.path()),
            ["taken"],
            "the temporary file is removed"
        );
    }

    #[cfg(unix)]
    #[test]
    fn files_get_the_permissions_of_an_ordinary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let ordinary = dir.path().join("ordinary");
        File::create(&ordinary).unwrap();
        let atomic = dir.path().join("atomic");
        write_atomic(&atomic, b"x").unwrap();
        assert_eq!(mode(&atomic), mode(&ordinary), "{:o}", mode(&atomic));
    }

    #[test]
    fn a_sealed_file_reads_back_and_any_change_is_told() {
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        struct Run {
            steps: u32,
            accuracy: f64,
            kinds: std::collections::BTreeMap<String, u32>,
            name: String,
        }
        let run = Run {
            steps: 300,
            accuracy: 0.955,
            kinds: [("wrong_value".to_string(), 9)].into(),
            name: "lis-4".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        write_json_sealed(&path, &run).unwrap();
        assert_eq!(read_json_sealed::<Run>(&path).unwrap(), run);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"crc32\""), "{text}");

        // Every byte changed (to each of a few others) is caught: digits, letters, the
        // seal's value and its name included.
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [b'0', b'7', b'a', b' ', b'"'] {
                if bytes[i] == replacement {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[i] = replacement;
                std::fs::write(&path, &changed).unwrap();
                if let Ok(read) = read_json_sealed::<Run>(&path) {
                    // Only a change outside the content may pass: whitespace for whitespace.
                    assert!(
                        bytes[i].is_ascii_whitespace() && replacement == b' ',
                        "byte {i} changed to {:?} was read: {read:?}",
                        replacement as char
                    );
                }
            }
        }
        std::fs::write(&path, "{\"steps\": 1").unwrap();
        assert!(matches!(
            read_json_sealed::<Run>(&path),
            Err(SealedReadError::Json(_))
        ));

        // One line of a log, the same way.
        let line = sealed_line(&run).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(read_sealed_line::<Run>(&line).unwrap(), run);
        assert!(read_sealed_line::<Run>(&line.replacen("300", "301", 1)).is_err());

        // Files from before sealing read as they are.
        std::fs::write(
            &path,
            r#"{"steps": 1, "accuracy": 0.5, "kinds": {}, "name": "x"}"#,
        )
        .unwrap();
        assert_eq!(read_json_sealed::<Run>(&path).unwrap().steps, 1);
    }
}
