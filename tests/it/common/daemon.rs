//! A real `git daemon` on loopback, for tests of agents on other hosts: the test binds a port
//! (127.0.0.1:0) and hands each connection to `git daemon --inetd`, which serves the bare
//! repositories under a directory, pushes included. Stopped (and its children killed) on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::bare_env;

pub struct GitDaemon {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GitDaemon {
    /// Serves the bare repositories under `root` (read and push), each as
    /// `git://127.0.0.1:PORT/NAME`; `home` is the daemon's bare environment.
    pub fn serve(root: &Path, home: &Path) -> GitDaemon {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let (root, home, stopping) = (root.to_path_buf(), home.to_path_buf(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut children: Vec<Child> = Vec::new();
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Some(child) = serve_one(stream, &root, &home) {
                    children.push(child);
                }
                children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            }
            for mut c in children {
                let _ = c.kill();
                let _ = c.wait();
            }
        });
        GitDaemon {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL of the repository `name` under the root.
    pub fn url(&self, name: &str) -> String {
        format!("git://{}/{name}", self.addr)
    }
}

fn serve_one(stream: TcpStream, root: &Path, home: &Path) -> Option<Child> {
    let input = stream.try_clone().ok()?;
    let mut cmd = Command::new("git");
    cmd.args(["daemon", "--inetd", "--export-all", "--enable=receive-pack"])
        .arg(format!("--base-path={}", root.display()))
        .arg(root)
        .stdin(Stdio::from(OwnedFd::from(input)))
        .stdout(Stdio::from(OwnedFd::from(stream)))
        .stderr(Stdio::null());
    bare_env(&mut cmd, home);
    cmd.spawn().ok()
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A bare repository `name` under `root`, holding what `from`'s `branch` holds.
pub fn bare_copy(root: &Path, name: &str, from: &Path, branch: &str, home: &Path) -> PathBuf {
    let bare = root.join(name);
    let git = |dir: &Path, args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(dir);
        bare_env(&mut cmd, home);
        let out = cmd.output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::create_dir_all(&bare).expect("bare dir");
    git(&bare, &["init", "-q", "--bare", "-b", branch]);
    let target = bare.to_string_lossy().into_owned();
    git(
        from,
        &["push", "-q", &target, &format!("{branch}:{branch}")],
    );
    bare
}
