//! A guard for tests that mount (issue 19): spawns `cta-data mount`, waits until the
//! mountpoint shows in /proc/self/mountinfo, and on drop ends the process (SIGTERM, wait,
//! SIGKILL) and removes a mount left behind (`fusermount3 -u -z`), so a failing test never
//! leaves a mount.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a mount may take to show up (a loaded 2-core machine, a cold server).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `cta-data mount`; unmounted and ended when dropped.
#[derive(Debug)]
pub struct MountGuard {
    child: Option<Child>,
    mountpoint: PathBuf,
    log: tempfile::NamedTempFile,
}

/// Whether `mountpoint` is a mount point now, per /proc/self/mountinfo.
pub fn is_mounted(mountpoint: &Path) -> bool {
    let target = mountpoint
        .canonicalize()
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    let target = target.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
}

/// Whether FUSE mounts can be made here (/dev/fuse and fusermount3 present).
pub fn fuse_available() -> bool {
    Path::new("/dev/fuse").exists()
        && Command::new("fusermount3")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

impl MountGuard {
    /// Runs `cmd` (a `cta-data ... mount REMOTE MOUNTPOINT` command; its stderr goes to a
    /// log file) and waits until `mountpoint` is mounted. Fails with the log when the process
    /// ends first or the mount does not show within [`READY_TIMEOUT`].
    pub fn spawn(mut cmd: Command, mountpoint: &Path) -> std::io::Result<MountGuard> {
        let log = tempfile::NamedTempFile::new()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen()?)
            .spawn()?;
        let mut g = MountGuard {
            child: Some(child),
            mountpoint: mountpoint.to_path_buf(),
            log,
        };
        let start = Instant::now();
        loop {
            if is_mounted(mountpoint) && g.stderr().contains("mounted ") {
                return Ok(g);
            }
            if let Some(c) = g.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(std::io::Error::other(format!(
                        "cta-data mount ended ({status}) before the mount was ready:\n{}",
                        g.stderr()
                    )));
                }
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(std::io::Error::other(format!(
                    "{} not mounted after {READY_TIMEOUT:?}:\n{}",
                    mountpoint.display(),
                    g.stderr()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The mount process's stderr so far (its log lines).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The mountpoint.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The process id of `cta-data mount`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits (at most `wait`) for the process to end: its exit status,
    /// `None` if it did not end in time (the guard then still cleans up on drop).
    pub fn terminate(&mut self, wait: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM, wait)
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits as [`Self::terminate`].
    pub fn interrupt(&mut self, wait: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGINT, wait)
    }

    /// Sends `sig` and waits as [`Self::terminate`].
    pub fn signal(&mut self, sig: libc::c_int, wait: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.child.is_some() && self.terminate(Duration::from_secs(20)).is_none() {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.mountpoint)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
