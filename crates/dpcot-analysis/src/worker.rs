//! How a sweep starts the process that trains one run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a sweep starts the worker process that executes one run: a program and the arguments
/// that come before the job file. The caller (the `dpcot` binary) says what it is; the sweep
/// only appends the path of a [`RunJob`] file.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub(crate) program: PathBuf,
    args: Vec<OsString>,
}

impl WorkerCommand {
    /// `program`, with no argument before the job file yet.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// With `arg` before the job file.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The process that executes the job in `job`; on Linux it is killed when the sweep dies,
    /// so that a killed sweep leaves no worker training on behind it.
    pub(crate) fn command(&self, job: &Path) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).arg(job);
        #[cfg(target_os = "linux")]
        die_with_parent(&mut command);
        command
    }
}

/// Makes the child receive SIGKILL when the thread that spawned it ends, which for a sweep
/// means when the sweep process dies (its worker threads wait for their children).
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec the closure only makes async-signal-safe system calls
    // (prctl, getppid) and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the request took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the sweep died while starting its worker",
                ));
            }
            Ok(())
        });
    }
}
