//! A one-node Slurm cluster on this machine: Debian's `slurm-wlm` and `munge`, configured in a
//! directory of their own, started as root and stopped again (also when the test fails).
//!
//! Nothing else is touched: slurm.conf, the MUNGE key, the daemons' state, pid and log files
//! all live in that directory (MUNGE's socket in /run/dpcot-slurm-test), and every Slurm
//! command is pointed at that slurm.conf through `SLURM_CONF`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// The programs the test runs, and the Debian packages that have them.
const PROGRAMS: [&str; 8] = [
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "sinfo",
    "scontrol",
    "scancel",
];
const PACKAGES: [&str; 2] = ["slurm-wlm", "munge"];

/// slurmctld's and slurmd's ports, Slurm's defaults.
const PORTS: [u16; 2] = [6817, 6818];

/// Job states after which a job does nothing more (squeue's `%T`).
const ENDED: [&str; 9] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
];

/// How often job states are polled.
pub const POLL: Duration = Duration::from_millis(100);

/// Fails unless this process runs as root on Linux: the daemons are started as root.
pub fn require_root() -> Result<()> {
    ensure!(
        cfg!(target_os = "linux"),
        "the Slurm test runs on Linux (Debian's slurm-wlm)"
    );
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .context("no Uid line in /proc/self/status")?;
    ensure!(
        uid == "0",
        "the Slurm test starts munged, slurmctld and slurmd as root and installs them with \
         apt-get if missing: run it as root (uid {uid} here), e.g. in a container or a VM"
    );
    Ok(())
}

/// Where each program the test runs is.
#[derive(Debug, Clone)]
pub struct Programs(BTreeMap<&'static str, PathBuf>);

impl Programs {
    /// The programs, installing Debian's packages first if any is missing; true if it installed.
    pub fn find_or_install() -> Result<(Self, bool)> {
        if let Ok(programs) = Self::find() {
            return Ok((programs, false));
        }
        eprintln!(
            "== installing Debian's {} (apt-get, noninteractive)",
            PACKAGES.join(" and ")
        );
        for args in [
            &["update", "-q"][..],
            &[
                &["install", "-y", "-q", "--no-install-recommends"][..],
                &PACKAGES[..],
            ]
            .concat(),
        ] {
            eprintln!("$ apt-get {}", args.join(" "));
            let status = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .status()
                .context(
                    "running apt-get (on a machine without apt, install Slurm's daemons and \
                     clients and MUNGE yourself)",
                )?;
            ensure!(
                status.success(),
                "`apt-get {}` failed ({status})",
                args.join(" ")
            );
        }
        let programs = Self::find()
            .context("apt-get installed slurm-wlm and munge, yet programs are missing")?;
        Ok((programs, true))
    }

    /// Every program, from the PATH or the sbin directories (which a root PATH may lack).
    fn find() -> Result<Self> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
        let mut found = BTreeMap::new();
        let mut missing = Vec::new();
        for name in PROGRAMS {
            match dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
                Some(path) => {
                    found.insert(name, path);
                }
                None => missing.push(name),
            }
        }
        ensure!(missing.is_empty(), "not installed: {}", missing.join(", "));
        Ok(Self(found))
    }

    fn path(&self, name: &str) -> &Path {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not among the programs looked for"))
    }
}

/// A job's id, as sbatch gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One job, or one task of an array job, as squeue shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The job it belongs to (the array job for an array's task).
    pub job: JobId,
    /// Its index in the array; `None` for a job that is no array.
    pub index: Option<u32>,
    /// Its state (`PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`, …).
    pub state: String,
    /// Why it is pending, if it is.
    pub reason: String,
}

impl Task {
    /// Whether it has ended, whichever way.
    pub fn ended(&self) -> bool {
        ENDED.contains(&self.state.as_str())
    }

    /// `job_index`, or `job` for a job that is no array.
    pub fn name(&self) -> String {
        match self.index {
            Some(index) => format!("{}_{index}", self.job),
            None => self.job.to_string(),
        }
    }
}

/// The files of the cluster, all in one directory.
#[derive(Debug, Clone)]
struct Files {
    dir: PathBuf,
}

impl Files {
    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }
    fn munge(&self) -> PathBuf {
        self.dir.join("munge")
    }
    /// Outside the directory: munged wants every directory above its socket open to everyone,
    /// which a home directory is not.
    fn munge_socket(&self) -> PathBuf {
        Path::new(MUNGE_SOCKET_DIR).join("munge.socket.2")
    }
    fn log(&self, daemon: &str) -> PathBuf {
        match daemon {
            "munged" => self.munge().join("munged.log"),
            _ => self.dir.join(format!("{daemon}.log")),
        }
    }
    fn pid_file(&self, daemon: &str) -> PathBuf {
        match daemon {
            "munged" => self.munge().join("munged.pid"),
            _ => self.dir.join(format!("{daemon}.pid")),
        }
    }
}

/// The directory of munged's socket.
const MUNGE_SOCKET_DIR: &str = "/run/dpcot-slurm-test";

/// The daemons, in the order they start.
const DAEMONS: [&str; 3] = ["munged", "slurmctld", "slurmd"];

/// The running cluster; dropping it stops it.
pub struct Cluster {
    programs: Programs,
    files: Files,
    /// The daemons' process ids, once started.
    pids: BTreeMap<&'static str, u32>,
}

impl Cluster {
    /// Stops daemons that a killed earlier run left behind in `dir` (their pid files are
    /// there), then configures the cluster in `dir`, which must be empty, and starts it;
    /// returns once its node is idle, or fails after `timeout`.
    pub fn start(programs: Programs, dir: &Path, timeout: Duration) -> Result<Self> {
        let files = Files {
            dir: dir.to_path_buf(),
        };
        let mut cluster = Self {
            programs,
            files,
            pids: BTreeMap::new(),
        };
        for port in PORTS {
            std::net::TcpListener::bind(("0.0.0.0", port)).with_context(|| {
                format!(
                    "port {port} (Slurm's) is in use: is another slurmctld or slurmd running on \
                     this machine?"
                )
            })?;
        }
        cluster.start_munged()?;
        cluster.write_conf()?;
        for daemon in ["slurmctld", "slurmd"] {
            cluster.start_daemon(daemon)?;
        }
        cluster.wait_for_idle_node(timeout)?;
        Ok(cluster)
    }

    /// Stops a cluster in `dir` that a run of the test left running when it was killed before
    /// it could stop it (its daemons' pid files are there): its jobs, then its daemons.
    pub fn stop_leftovers(programs: &Programs, dir: &Path) -> Result<()> {
        let files = Files {
            dir: dir.to_path_buf(),
        };
        let pids: BTreeMap<&'static str, u32> = DAEMONS
            .into_iter()
            .filter_map(|daemon| {
                let pid = read_pid(&files.pid_file(daemon))?;
                alive(pid, daemon).then_some((daemon, pid))
            })
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
        eprintln!("== stopping the cluster an earlier Slurm test left running: {pids:?}");
        Self {
            programs: programs.clone(),
            files,
            pids,
        }
        .stop()
    }

    /// The daemons' log files, for error messages.
    pub fn logs(&self) -> String {
        DAEMONS
            .iter()
            .map(|d| format!("{d}: {}", self.files.log(d).display()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn start_munged(&mut self) -> Result<()> {
        let munge = self.files.munge();
        // munged wants its socket's directory open to everyone and its key readable by root
        // only.
        std::fs::create_dir_all(&munge)?;
        std::fs::create_dir_all(MUNGE_SOCKET_DIR)?;
        set_mode(Path::new(MUNGE_SOCKET_DIR), 0o755)?;
        let key = munge.join("munge.key");
        if !key.exists() {
            let mut bytes = vec![0; 128];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut random| random.read_exact(&mut bytes))
                .context("reading /dev/urandom for the MUNGE key")?;
            std::fs::write(&key, &bytes).with_context(|| format!("writing {}", key.display()))?;
        }
        set_mode(&key, 0o400)?;
        let mut command = Command::new(self.programs.path("munged"));
        command
            .arg(format!("--socket={}", self.files.munge_socket().display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!(
                "--pid-file={}",
                self.files.pid_file("munged").display()
            ))
            .arg(format!(
                "--seed-file={}",
                munge.join("munged.seed").display()
            ))
            .arg(format!("--log-file={}", self.files.log("munged").display()));
        self.run_daemon("munged", command)
    }

    fn start_daemon(&mut self, daemon: &'static str) -> Result<()> {
        let mut command = Command::new(self.programs.path(daemon));
        command.arg("-f").arg(self.files.conf());
        self.run_daemon(daemon, command)
    }

    /// Runs a daemon that forks into the background, and notes its pid.
    fn run_daemon(&mut self, daemon: &'static str, mut command: Command) -> Result<()> {
        eprintln!("$ {command:?}");
        let log = self.files.log(daemon);
        let status = command
            .env("SLURM_CONF", self.files.conf())
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running {daemon}"))?;
        ensure!(
            status.success(),
            "{daemon} did not start ({status}); its log: {}",
            log.display()
        );
        let pid_file = self.files.pid_file(daemon);
        let started = Instant::now();
        let pid = loop {
            if let Some(pid) = read_pid(&pid_file) {
                break pid;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(10),
                "{daemon} wrote no pid file ({}); its log: {}",
                pid_file.display(),
                log.display()
            );
            std::thread::sleep(POLL);
        };
        self.pids.insert(daemon, pid);
        Ok(())
    }

    /// A one-node slurm.conf: this machine with its real CPU count and memory, jobs tracked
    /// by their process tree (no cgroups), no accounting.
    fn write_conf(&self) -> Result<()> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the host name")?;
        let node = host.trim().split('.').next().unwrap_or_default();
        ensure!(!node.is_empty(), "this machine has no host name");
        let cpus = std::thread::available_parallelism()
            .context("counting CPUs")?
            .get();
        let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
        let mem_kib: u64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no MemTotal in /proc/meminfo")?;
        let dir = &self.files.dir;
        let mut conf = String::new();
        let mut line = |key: &str, value: &dyn std::fmt::Display| {
            writeln!(conf, "{key}={value}").expect("writing to a String")
        };
        line("ClusterName", &"dpcot-test");
        line("SlurmctldHost", &format!("{node}(127.0.0.1)"));
        line("SlurmUser", &"root");
        line("SlurmdUser", &"root");
        line("AuthType", &"auth/munge");
        line("CredType", &"cred/munge");
        line(
            "AuthInfo",
            &format!("socket={}", self.files.munge_socket().display()),
        );
        line("StateSaveLocation", &dir.join("slurmctld-state").display());
        line("SlurmdSpoolDir", &dir.join("slurmd-spool").display());
        for daemon in ["slurmctld", "slurmd"] {
            let name = if daemon == "slurmctld" {
                "Slurmctld"
            } else {
                "Slurmd"
            };
            line(
                &format!("{name}PidFile"),
                &self.files.pid_file(daemon).display(),
            );
            line(&format!("{name}LogFile"), &self.files.log(daemon).display());
        }
        line("ProctrackType", &"proctrack/linuxproc");
        line("TaskPlugin", &"task/none");
        line("SelectType", &"select/cons_tres");
        // CPUs are what jobs ask for; memory is not scheduled (jobs need not give --mem).
        line("SelectTypeParameters", &"CR_Core");
        line("SchedulerType", &"sched/backfill");
        line("AccountingStorageType", &"accounting_storage/none");
        line("JobAcctGatherType", &"jobacct_gather/none");
        line("JobCompType", &"jobcomp/none");
        line("MpiDefault", &"none");
        line("ReturnToService", &2);
        // Ended jobs stay visible to squeue for an hour.
        line("MinJobAge", &3600);
        line(
            "NodeName",
            &format!(
                "{node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={} State=UNKNOWN",
                mem_kib / 1024
            ),
        );
        line(
            "PartitionName",
            &format!("test Nodes={node} Default=YES MaxTime=INFINITE State=UP"),
        );
        let path = self.files.conf();
        std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
        for dir in ["slurmctld-state", "slurmd-spool"] {
            std::fs::create_dir_all(self.files.dir.join(dir))?;
        }
        Ok(())
    }

    fn wait_for_idle_node(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < timeout {
            if let Ok(out) = self.output("sinfo", &["-h", "-N", "-o", "%N %T"]) {
                last = out.trim().to_string();
                if last.split_whitespace().nth(1) == Some("idle") {
                    return Ok(());
                }
            }
            std::thread::sleep(POLL);
        }
        let reason = self
            .output("sinfo", &["-R"])
            .unwrap_or_else(|e| e.to_string());
        bail!(
            "the node is not idle after {} s (sinfo: {last:?}; sinfo -R: {}); logs: {}",
            timeout.as_secs(),
            reason.trim(),
            self.logs()
        )
    }

    /// A Slurm command, pointed at this cluster's slurm.conf.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.programs.path(program));
        command.env("SLURM_CONF", self.files.conf());
        command
    }

    /// Runs a Slurm command and returns its standard output.
    fn output(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program}"))?;
        ensure!(
            out.status.success(),
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Submits `script` from `dir` with sbatch's `options` and the environment `env` added to
    /// this process's (which sbatch passes on to the job).
    pub fn sbatch(
        &self,
        script: &Path,
        options: &[String],
        env: &[(&str, String)],
        dir: &Path,
    ) -> Result<JobId> {
        let mut command = self.command("sbatch");
        command
            .arg("--parsable")
            .args(options)
            .arg(script)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null());
        let shown: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        eprintln!(
            "$ {shown}sbatch {} {}",
            options.join(" "),
            script.strip_prefix(dir).unwrap_or(script).display()
        );
        let out = command.output().context("running sbatch")?;
        ensure!(
            out.status.success(),
            "sbatch {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        // `--parsable` prints `id` or `id;cluster`.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout
            .trim()
            .split(';')
            .next()
            .and_then(|id| id.parse().ok())
            .map(JobId)
            .with_context(|| format!("sbatch printed no job id: {stdout:?}"))?;
        Ok(id)
    }

    /// Every task of `jobs` (each task of an array separately), as squeue sees them now.
    pub fn tasks(&self, jobs: &[JobId]) -> Result<Vec<Task>> {
        let ids: Vec<String> = jobs.iter().map(JobId::to_string).collect();
        let out = self.output(
            "squeue",
            &[
                "-h",
                "--array",
                "--states=all",
                "--jobs",
                &ids.join(","),
                "--format=%F|%K|%T|%r",
            ],
        )?;
        let mut tasks = Vec::new();
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.trim().split('|').collect();
            let [job, index, state, reason] = fields[..] else {
                bail!("unexpected squeue line {line:?}");
            };
            tasks.push(Task {
                job: JobId(
                    job.parse()
                        .with_context(|| format!("squeue line {line:?}"))?,
                ),
                index: index.parse().ok(),
                state: state.to_string(),
                reason: reason.to_string(),
            });
        }
        tasks.sort_by_key(|t| (t.job, t.index));
        Ok(tasks)
    }

    /// Polls the tasks of `jobs` until `step` returns something, printing a line (time since
    /// `since`, states) whenever their states change; fails after `timeout`.
    pub fn watch<T>(
        &self,
        jobs: &[JobId],
        since: Instant,
        timeout: Duration,
        what: &str,
        mut step: impl FnMut(&[Task]) -> Result<Option<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut shown = String::new();
        let mut shown_at = Duration::ZERO;
        loop {
            let tasks = self.tasks(jobs)?;
            let line = tasks
                .iter()
                .map(|t| match t.state.as_str() {
                    "PENDING" if t.reason != "None" => {
                        format!("{} PENDING ({})", t.name(), t.reason)
                    }
                    state => format!("{} {state}", t.name()),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let elapsed = started.elapsed();
            if line != shown || elapsed - shown_at >= Duration::from_secs(30) {
                eprintln!("  [{:>4.0} s] {line}", since.elapsed().as_secs_f64());
                shown = line;
                shown_at = elapsed;
            }
            if let Some(done) = step(&tasks)? {
                return Ok(done);
            }
            ensure!(
                elapsed < timeout,
                "{what}: not done after {} s ({shown}); logs: {}",
                timeout.as_secs(),
                self.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until every task of `jobs` has ended, and returns them.
    pub fn wait(
        &self,
        jobs: &[JobId],
        since: Instant,
        timeout: Duration,
        what: &str,
    ) -> Result<Vec<Task>> {
        self.watch(jobs, since, timeout, what, |tasks| {
            Ok(tasks.iter().all(Task::ended).then(|| tasks.to_vec()))
        })
    }

    /// Cancels a job or one task of an array (`job_index`).
    pub fn scancel(&self, task: &str) -> Result<()> {
        eprintln!("$ scancel {task}");
        self.output("scancel", &[task]).map(drop)
    }

    /// Suspends a job or one task of an array (its processes get SIGSTOP), or with `resume`
    /// lets it go on: `scontrol suspend|resume`.
    pub fn suspend(&self, task: &str, resume: bool) -> Result<()> {
        let verb = if resume { "resume" } else { "suspend" };
        eprintln!("$ scontrol {verb} {task}");
        self.output("scontrol", &[verb, task]).map(drop)
    }

    /// Cancels the jobs still running, then stops the daemons.
    pub fn stop(mut self) -> Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        if self.pids.is_empty() {
            return Ok(());
        }
        eprintln!("== stopping the cluster");
        let mut first_error = None;
        let mut note = |result: Result<()>| {
            if let Err(e) = result {
                eprintln!("error while stopping the cluster: {e:#}");
                first_error.get_or_insert(e);
            }
        };
        // slurmd leaves the processes of running jobs behind when it stops.
        let shutdown = if self.pids.contains_key("slurmctld") {
            self.cancel_all()
                .and_then(|()| self.output("scontrol", &["shutdown"]).map(drop))
        } else {
            Err(anyhow::anyhow!("slurmctld is not running"))
        };
        let grace = Duration::from_secs(if shutdown.is_ok() { 30 } else { 0 });
        note(shutdown);
        for daemon in ["slurmd", "slurmctld"] {
            if let Some(pid) = self.pids.remove(daemon) {
                if !exits_within(pid, daemon, grace) {
                    eprintln!("terminating {daemon} (pid {pid})");
                    terminate(pid, daemon);
                }
            }
        }
        if let Some(pid) = self.pids.remove("munged") {
            terminate(pid, "munged");
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Cancels every job of the cluster that has not ended, and waits until they have.
    fn cancel_all(&self) -> Result<()> {
        let active = || {
            self.output(
                "squeue",
                &[
                    "-h",
                    "--states=PENDING,CONFIGURING,RUNNING,COMPLETING,SUSPENDED",
                    "--format=%i",
                ],
            )
        };
        if active()?.trim().is_empty() {
            return Ok(());
        }
        // The cluster is this test's own: every job on it is the test's.
        eprintln!("$ scancel --user=root");
        self.output("scancel", &["--user=root"])?;
        let started = Instant::now();
        while !active()?.trim().is_empty() {
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "jobs still active a minute after scancel"
            );
            std::thread::sleep(POLL);
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Errors were printed; a failing test already has its own.
        let _ = self.shut_down();
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether process `pid` is running program `name` (and not some later process with its pid).
fn alive(pid: u32, name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == name)
}

fn exits_within(pid: u32, name: &str, timeout: Duration) -> bool {
    let started = Instant::now();
    while alive(pid, name) {
        if started.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

/// Sends SIGTERM to `pid` (if it still runs `name`), then SIGKILL if it is still there after
/// 10 s.
fn terminate(pid: u32, name: &str) {
    for (signal, wait) in [("-TERM", 10), ("-KILL", 5)] {
        if !alive(pid, name) {
            return;
        }
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
        if exits_within(pid, name, Duration::from_secs(wait)) {
            return;
        }
    }
    eprintln!("{name} (pid {pid}) is still running");
}
