//! `cta-data mount`: a directory of the storage as a local folder, through FUSE.
//!
//! Built on the pure-Rust `fuser` crate (no libfuse): as root it mounts with `mount(2)`,
//! otherwise through Debian's `fusermount3` (package `fuse3`). It only uses the
//! [`StorageBackend`] trait, so every backend (dcache, x509, downloadservice, local) mounts.
//!
//! * attributes and directory entries come from the streamed listing, cached for
//!   `dir_cache_time`: `ls -l DIR` costs one listing;
//! * reads are ranged GETs into a byte-bounded block cache; sequential reads are detected per
//!   open file and served by a read-ahead window that grows (a fifth of the bytes read in
//!   sequence, 256 KiB to 96 MiB) with about 8 ranges in flight; blocks a stream has read
//!   leave memory at once; every request runs on the tokio runtime, so parallel reads of one
//!   file proceed in parallel;
//! * with `write`, new files are spooled to a private directory and uploaded at `close`
//!   (write-once: rewriting, truncating or random writes give `EPERM`);
//! * every backend call has a deadline (`io_timeout`): a stalled server gives `EIO`.

#![warn(missing_docs)]

mod cache;
mod fs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ctadata::{Entry, Error, RemotePath, Result, StorageBackend};
use fuser::{BackgroundSession, Config, MountOption, SessionACL};

pub use cache::BLOCK;

/// How a mount behaves; `MountOptions::default()` is a read-only mount with rclone-like
/// defaults.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Allow writing (new files, mkdir, rmdir, unlink, rename); read-only otherwise.
    pub write: bool,
    /// Let other users (and root) use the mount (`allow_other`; for non-root users it
    /// needs `user_allow_other` in /etc/fuse.conf).
    pub allow_other: bool,
    /// Owner shown for every file; the mounting user's when `None`.
    pub uid: Option<u32>,
    /// Group shown for every file; the mounting user's when `None`.
    pub gid: Option<u32>,
    /// Permission bits taken away from 0777 (directories) and 0666 (files).
    pub umask: u32,
    /// How long listings and attributes are trusted before asking the server again.
    pub dir_cache_time: Duration,
    /// A directory of this mount's own: file blocks are cached on disk in `blocks/`
    /// (emptied at start) and new files spooled in `spool/` before their upload. `None`:
    /// blocks in memory only, new files spooled to a private temporary directory.
    pub cache_dir: Option<PathBuf>,
    /// Bound of the block cache, read-ahead included, in bytes: the memory cache without
    /// `cache_dir`; with it, the disk cache (memory then takes a quarter, at most 256 MiB).
    pub cache_max_size: u64,
    /// Stage a file that is only on tape when it is opened, and wait, instead of failing.
    pub stage_on_open: bool,
    /// Deadline of each request to the server (and of each wait for more bytes of an
    /// answer): past it the operation fails with `EIO`.
    pub io_timeout: Duration,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            write: false,
            allow_other: false,
            uid: None,
            gid: None,
            umask: 0o022,
            dir_cache_time: Duration::from_secs(60),
            cache_dir: None,
            cache_max_size: 256 << 20,
            stage_on_open: false,
            io_timeout: Duration::from_secs(60),
        }
    }
}

/// The checks made before anything is mounted: the FUSE device, `fusermount3`, and the
/// mountpoint (an existing, empty directory that is not a mount already).
pub fn preflight(mountpoint: &Path) -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        return Err(Error::config(
            "cannot mount: /dev/fuse does not exist (FUSE is not available on this machine)",
            "load the module ('modprobe fuse' as root); in a container, start it with '--device /dev/fuse' (and '--cap-add SYS_ADMIN')",
        ));
    }
    if find_in_path("fusermount3").is_none() {
        return Err(Error::config(
            "cannot mount: 'fusermount3' is not installed (not found in PATH)",
            "install FUSE 3: 'sudo apt-get install fuse3' on Debian and Ubuntu, 'sudo dnf install fuse3' on Fedora and EL",
        ));
    }
    let meta = match std::fs::metadata(mountpoint) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::usage(
                format!(
                    "cannot mount at {}: it does not exist",
                    mountpoint.display()
                ),
                format!("create it first: mkdir -p {}", mountpoint.display()),
            ))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(Error::usage(
                format!(
                    "cannot mount at {}: a mount there is broken (its process ended)",
                    mountpoint.display()
                ),
                format!(
                    "remove it with 'cta-data umount {}', then mount again",
                    mountpoint.display()
                ),
            ))
        }
        Err(e) => return Err(Error::local("inspect the mountpoint", mountpoint, e)),
    };
    if !meta.is_dir() {
        return Err(Error::usage(
            format!(
                "cannot mount at {}: it is not a directory",
                mountpoint.display()
            ),
            "give an empty directory as MOUNTPOINT",
        ));
    }
    if is_mounted(mountpoint) {
        return Err(Error::usage(
            format!(
                "cannot mount at {}: something is mounted there already",
                mountpoint.display()
            ),
            format!(
                "unmount it first ('cta-data umount {}'), or pick another directory",
                mountpoint.display()
            ),
        ));
    }
    let mut entries = std::fs::read_dir(mountpoint)
        .map_err(|e| Error::local("read the mountpoint", mountpoint, e))?;
    if entries.next().is_some() {
        return Err(Error::usage(
            format!(
                "cannot mount at {}: the directory is not empty (its files would be hidden)",
                mountpoint.display()
            ),
            "give an empty directory as MOUNTPOINT",
        ));
    }
    Ok(())
}

/// Asks the server for `remote` once before mounting, so a bad token or a missing directory
/// fails with the usual message and exit code instead of a mount that cannot be read.
pub async fn check_remote(
    backend: &Arc<dyn StorageBackend>,
    remote: &RemotePath,
    deadline: Duration,
) -> Result<Entry> {
    let e = match tokio::time::timeout(deadline, backend.stat(remote)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::transport(
                remote.to_string(),
                format!(
                    "no answer within {}s while looking up the directory to mount",
                    deadline.as_secs()
                ),
            ))
        }
    };
    if !e.is_dir() {
        return Err(Error::usage(
            format!("cannot mount {remote}: it is a file, not a directory"),
            "give the directory that holds it",
        ));
    }
    Ok(e)
}

/// A live mount: unmounted when dropped (also while a panic unwinds), lazily if it is busy.
pub struct Mounted {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

/// Mounts `remote` (whose entry `root` was just looked up) at `mountpoint`; requests are
/// served on the runtime `rt`.
pub fn mount(
    backend: Arc<dyn StorageBackend>,
    remote: RemotePath,
    root: Entry,
    mountpoint: &Path,
    opts: MountOptions,
    rt: tokio::runtime::Handle,
) -> Result<Mounted> {
    let mountpoint = mountpoint
        .canonicalize()
        .map_err(|e| Error::local("resolve the mountpoint", mountpoint, e))?;
    let mut options = vec![
        MountOption::FSName(format!("cta-data:{remote}")),
        MountOption::Subtype("cta-data".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    options.push(if opts.write {
        MountOption::RW
    } else {
        MountOption::RO
    });
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let fs = fs::MountFs::new(backend, remote.clone(), root, opts, rt)?;
    let session = fuser::Session::new(fs, &mountpoint, &config)
        .and_then(|s| s.spawn())
        .map_err(|e| Error::local("mount the storage at", &mountpoint, e))?;
    tracing::info!("mounted {remote} at {}", mountpoint.display());
    Ok(Mounted {
        session: Some(session),
        mountpoint,
    })
}

impl Mounted {
    /// The mountpoint (canonical).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// False once the mount has gone (unmounted from outside, `cta-data umount`).
    pub fn is_alive(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Unmounts: cleanly when nothing is open, else detached lazily (the mountpoint is
    /// gone at once; open files then fail with `ENOTCONN`). Returns whether it was lazy.
    pub fn unmount(mut self) -> bool {
        self.teardown()
    }

    fn teardown(&mut self) -> bool {
        let Some(session) = self.session.take() else {
            return false;
        };
        if session.guard.is_finished() {
            // Unmounted from outside: nothing left to undo (dropping the session would try
            // to unmount again and log a spurious failure).
            std::mem::forget(session);
            return false;
        }
        match session.umount_and_join() {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(
                    "{} is busy ({e}): detaching it lazily; programs that still have files open there get errors",
                    self.mountpoint.display()
                );
                lazy_unmount(&self.mountpoint);
                true
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Detaches a mount even while it is busy: `umount2(MNT_DETACH)` as root, else
/// `fusermount3 -u -z`.
fn lazy_unmount(mountpoint: &Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()) {
        // SAFETY: a valid NUL-terminated path; umount2 does not keep the pointer.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return;
        }
    }
    let _ = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mountpoint)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Opens (creating it 0600, appending) the log file of `mount --log-file`; an error names it.
pub fn open_log_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::local("open the log file", path, e))
}

/// Makes `file` this process's stderr (file descriptor 2), so every later log line and
/// message goes there (`mount --log-file`, once mounted).
pub fn redirect_stderr(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 of a descriptor we own onto 2; both stay valid; no memory is touched.
    if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `mountpoint` is a mount point now (per /proc/self/mountinfo).
pub fn is_mounted(mountpoint: &Path) -> bool {
    let target = mountpoint
        .canonicalize()
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|p| Path::new(&unescape_mountinfo(p)) == target)
    })
}

/// Undoes the octal escapes of /proc/self/mountinfo (`\040` for a space).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `cta-data umount MOUNTPOINT`: `fusermount3 -u`, then `-u -z` when busy. Returns a note
/// to print when the unmount had to be lazy.
pub fn unmount_path(mountpoint: &Path) -> Result<Option<String>> {
    if !is_mounted(mountpoint) {
        return Err(Error::usage(
            format!("{} is not mounted", mountpoint.display()),
            "give the MOUNTPOINT of a 'cta-data mount' (see 'grep cta-data /proc/mounts')",
        ));
    }
    let fusermount = find_in_path("fusermount3").ok_or_else(|| {
        Error::config(
            "cannot unmount: 'fusermount3' is not installed (not found in PATH)",
            "install FUSE 3 ('sudo apt-get install fuse3'), or as root run 'umount MOUNTPOINT'",
        )
    })?;
    let run = |lazy: bool| {
        let mut c = std::process::Command::new(&fusermount);
        c.arg("-u");
        if lazy {
            c.arg("-z");
        }
        c.arg(mountpoint)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::local("run", &fusermount, e))
    };
    let out = run(false)?;
    if out.status.success() {
        return Ok(None);
    }
    let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let lazy = run(true)?;
    if lazy.status.success() {
        return Ok(Some(format!(
            "{} was busy ({why}): detached lazily; it is gone from the tree now, and programs that still have files open there get errors",
            mountpoint.display()
        )));
    }
    Err(Error::usage(
        format!(
            "cannot unmount {}: {}",
            mountpoint.display(),
            String::from_utf8_lossy(&lazy.stderr).trim()
        ),
        "close the programs using it (see 'fuser -vm MOUNTPOINT'), or as root run 'umount -l MOUNTPOINT'",
    ))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The errno a failed backend operation gives a program, with a log line naming the path
/// and the reason (never a secret: errors do not carry credentials).
pub fn errno_of(op: &str, path: &RemotePath, e: &Error) -> fuser::Errno {
    use fuser::Errno;
    let errno = match e {
        Error::NotFound { .. } => Errno::ENOENT,
        Error::PermissionDenied { .. } | Error::Auth { .. } => Errno::EACCES,
        Error::Conflict { message, .. } if message.contains("not empty") => Errno::ENOTEMPTY,
        Error::Conflict { .. } => Errno::EEXIST,
        Error::Protocol {
            status: Some(507), ..
        } => Errno::ENOSPC,
        Error::Unsupported { .. } => Errno::EPERM,
        Error::InvalidPath { .. } | Error::Usage { .. } => Errno::EINVAL,
        _ => Errno::EIO,
    };
    if errno == Errno::ENOENT {
        tracing::debug!("{op} {path}: {e}");
    } else if let Some(hint) = e.hint() {
        // What to do, as the CLI says it: for an expired credential, the renewal command.
        tracing::warn!("{op} {path}: {e}; {hint}");
    } else {
        tracing::warn!("{op} {path}: {e}");
    }
    errno
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn preflight_names_the_problem() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope");
        let e = preflight(&missing).unwrap_err().to_string();
        if Path::new("/dev/fuse").exists() && find_in_path("fusermount3").is_some() {
            assert!(e.contains("does not exist"), "{e}");
            std::fs::write(d.path().join("f"), b"x").unwrap();
            let e = preflight(d.path()).unwrap_err().to_string();
            assert!(e.contains("not empty"), "{e}");
            let e = preflight(&d.path().join("f")).unwrap_err().to_string();
            assert!(e.contains("not a directory"), "{e}");
        }
    }

    #[test]
    fn errors_map_to_errno() {
        let p = RemotePath::parse("/a").unwrap();
        assert_eq!(
            errno_of("t", &p, &Error::not_found("/a")),
            fuser::Errno::ENOENT
        );
        let c = Error::conflict(&p, "the directory is not empty", "x");
        assert_eq!(errno_of("t", &p, &c), fuser::Errno::ENOTEMPTY);
        let c = Error::conflict(&p, "a file is already there", "x");
        assert_eq!(errno_of("t", &p, &c), fuser::Errno::EEXIST);
        let f = Error::protocol(&p, Some(507), "full");
        assert_eq!(errno_of("t", &p, &f), fuser::Errno::ENOSPC);
        let t = Error::transport("door", "stalled");
        assert_eq!(errno_of("t", &p, &t), fuser::Errno::EIO);
    }
}
