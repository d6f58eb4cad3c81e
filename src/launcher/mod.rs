//! Launching and supervising an agent's process for `spanfold agents run`: the command started
//! in its feature's worktree, in a process group of its own (so that stopping it stops whatever
//! it started), its output kept in a file; stopped with SIGTERM, then SIGKILL after a grace
//! period; the launcher's own SIGINT and SIGTERM caught so the child is stopped, not orphaned.
//! The only module that knows libc. What the launcher sets in the child's environment is
//! `env.rs`; making a new worktree ready before its agent starts (copied files, set-up
//! command, port block) is `prepare.rs`.

pub mod env;
pub mod prepare;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LaunchError {
    #[error(
        "cannot start {command:?} in {dir}: {source}; check that the command exists and is executable"
    )]
    Start {
        command: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("cannot write the run's output to {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
    #[error("waiting for the agent's process failed: {0}")]
    Wait(std::io::Error),
}

/// The signal the launcher itself received (0: none), set by its handler.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note_signal(signal: libc::c_int) {
    // Only an atomic store: all a signal handler may safely do.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM from now on, so that the launcher can stop its child and record
/// it before it ends, instead of dying and leaving the agent running.
pub fn catch_stop_signals() {
    let handler = note_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The stop signal the launcher received, if any.
pub fn stop_requested() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    /// The signal that ended it (`SIGTERM`, …).
    pub signal: Option<String>,
    pub duration: Duration,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exited with code 2", "ended by SIGKILL".
    pub fn describe(&self) -> String {
        match (&self.code, &self.signal) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("ended by {signal}"),
            (None, None) => "ended".to_owned(),
        }
    }
}

/// A started agent process.
pub struct Running {
    child: std::process::Child,
    pub pid: u32,
    started: Instant,
    pub log: PathBuf,
}

/// Starts `program` with `args` in `dir`, with `env` added to the launcher's environment, its
/// output (both streams) appended to `log`.
pub fn start(
    program: &str,
    args: &[String],
    dir: &Path,
    env: &[(String, String)],
    log: &Path,
) -> Result<Running, LaunchError> {
    let output = |source| LaunchError::Output {
        path: log.display().to_string(),
        source,
    };
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(output)?;
    }
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(output)?;
    let err = out.try_clone().map_err(output)?;
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // A group of its own: stopping it stops what it started too, and a Ctrl-C at the
        // terminal reaches the launcher, which stops it in order.
        .process_group(0)
        .spawn()
        .map_err(|source| LaunchError::Start {
            command: program.to_owned(),
            dir: dir.display().to_string(),
            source,
        })?;
    Ok(Running {
        pid: child.id(),
        child,
        started: Instant::now(),
        log: log.to_path_buf(),
    })
}

impl Running {
    /// How it ended, if it has.
    pub fn poll(&mut self) -> Result<Option<Exit>, LaunchError> {
        let status = self.child.try_wait().map_err(LaunchError::Wait)?;
        Ok(status.map(|s| self.exit_of(s)))
    }

    /// Stops it: SIGTERM to its group, then SIGKILL once `grace` has passed. Returns how it
    /// ended.
    pub fn stop(&mut self, grace: Duration) -> Result<Exit, LaunchError> {
        if let Some(exit) = self.poll()? {
            return Ok(exit);
        }
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(exit) = self.poll()? {
                return Ok(exit);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal_group(libc::SIGKILL);
        let status = self.child.wait().map_err(LaunchError::Wait)?;
        Ok(self.exit_of(status))
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill has no memory effects; a negative pid names the process group the
            // child leads (made with process_group(0)).
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }

    fn exit_of(&self, status: std::process::ExitStatus) -> Exit {
        Exit {
            code: status.code(),
            signal: status.signal().map(signal_name),
            duration: self.started.elapsed(),
        }
    }
}

/// Asks a launcher (or any child) to stop with SIGTERM and waits for it, SIGKILL after
/// `grace`: how `spanfold demo` ends the `agents run` it started.
pub fn terminate(child: &mut std::process::Child, grace: Duration) -> std::io::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    child.wait().map(|_| ())
}

/// Whether a process with this id runs (or ran and was not yet reaped): what tells a
/// temporary directory a dead process left from one a live process still uses.
pub fn is_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; kill has no memory effects.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A signal's name as people write it.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        other => format!("signal {other}"),
    }
}

/// The last `lines` lines of a file (at most its last 16 KiB), for a reason a person reads.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 << 10)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
