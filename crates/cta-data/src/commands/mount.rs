//! `mount` and `umount` (issue 19): the storage as a local folder, on `ctadata-mount`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ctadata::{Error, RemotePath, Result, StorageBackend};
use ctadata_mount::MountOptions;

use crate::cli::{Global, MountArgs};

/// Set for the background process of `--daemon`: the PID file it removes when it ends.
const PID_FILE_ENV: &str = "CTADATA_MOUNT_PID_FILE";

/// `mount` in the foreground: check, mount, wait for SIGTERM, SIGINT (Ctrl-C) or SIGHUP,
/// unmount, exit 0.
pub(super) async fn mount(
    _g: &Global,
    backend: Arc<dyn StorageBackend>,
    remote: &RemotePath,
    args: &MountArgs,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::internal(format!("cannot watch for SIGTERM: {e}")))?;
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| Error::internal(format!("cannot watch for SIGHUP: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| Error::internal(format!("cannot watch for SIGINT: {e}")))?;
    ctadata_mount::preflight(&args.mountpoint)?;
    let log_file = match &args.log_file {
        Some(p) => Some(ctadata_mount::open_log_file(p)?),
        None => None,
    };
    let opts = MountOptions {
        write: args.write,
        allow_other: args.allow_other,
        uid: args.uid,
        gid: args.gid,
        umask: args.umask,
        dir_cache_time: args.dir_cache_time,
        cache_dir: args.cache_dir.clone(),
        cache_max_size: args.cache_max_size.unwrap_or(if args.cache_dir.is_some() {
            1 << 30
        } else {
            256 << 20
        }),
        stage_on_open: args.stage_on_open,
        io_timeout: args.io_timeout,
    };
    let root = ctadata_mount::check_remote(&backend, remote, opts.io_timeout).await?;
    let rt = tokio::runtime::Handle::current();
    let mounted = ctadata_mount::mount(backend, remote.clone(), root, &args.mountpoint, opts, rt)?;
    // Not eprintln!: with --daemon, stderr is a pipe closed once this line is read.
    let _ = writeln!(
        std::io::stderr(),
        "mounted {remote} at {}",
        mounted.mountpoint().display()
    );
    if let Some(f) = &log_file {
        // From here on every log line and message goes to the file (a --daemon's terminal
        // is gone once it has read the line above).
        match ctadata_mount::redirect_stderr(f) {
            Ok(()) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "{} mounted {remote} at {}",
                    log_time(),
                    mounted.mountpoint().display()
                );
            }
            Err(e) => tracing::warn!("cannot log to the --log-file: {e}; logging on stderr"),
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let why = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = hup.recv() => break "SIGHUP",
            _ = int.recv() => break "SIGINT (Ctrl-C)",
            _ = tick.tick() => {
                if !mounted.is_alive() {
                    break "unmounted from outside";
                }
            }
        }
    };
    tracing::info!("{why}: unmounting {}", mounted.mountpoint().display());
    let mp = mounted.mountpoint().to_path_buf();
    let lazy = tokio::task::block_in_place(|| mounted.unmount());
    if lazy {
        let _ = writeln!(
            std::io::stderr(),
            "unmounted {} lazily: files were still open there",
            mp.display()
        );
    }
    if log_file.is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "{} {why}: unmounted {}",
            log_time(),
            mp.display()
        );
    }
    remove_pid_file();
    Ok(())
}

/// Now, for the lines `mount --log-file` writes itself (UTC, milliseconds).
fn log_time() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn remove_pid_file() {
    if let Some(p) = std::env::var_os(PID_FILE_ENV) {
        let _ = std::fs::remove_file(p);
    }
}

/// `mount --daemon`: runs the same command without `--daemon` in the background, passes its
/// messages on until the mount is ready (or the background process fails, whose exit code
/// this process takes), writes the PID file, and returns.
pub(super) fn daemonize(args: &MountArgs) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::internal(format!("cannot find the cta-data executable: {e}")))?;
    let is_cli = exe
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("cta-data"));
    if !is_cli {
        return Err(Error::usage(
            "--daemon needs the cta-data executable",
            "run 'cta-data mount --daemon ...' from a shell, or run mount in the foreground under a supervisor (systemd, nohup)",
        ));
    }
    let mut child_args = Vec::new();
    let mut skip_next = false;
    for a in std::env::args_os().skip(1) {
        if skip_next {
            skip_next = false;
            continue;
        }
        match a.to_str() {
            Some("--daemon") => continue,
            Some("--pid-file") => {
                skip_next = true;
                continue;
            }
            Some(s) if s.starts_with("--pid-file=") => continue,
            _ => child_args.push(a),
        }
    }
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(&child_args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(p) = &args.pid_file {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        cmd.env(PID_FILE_ENV, abs);
    }
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a Ctrl-C in this terminal does not reach it.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|e| Error::local("start", &exe, e))?;
    let pid = child.id();
    let stderr = child.stderr.take();
    let mut ready = false;
    if let Some(stderr) = stderr {
        let mut out = std::io::stderr();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(out, "{line}");
            if line.starts_with("mounted ") {
                ready = true;
                break;
            }
        }
    }
    if !ready {
        let status = child
            .wait()
            .map_err(|e| Error::internal(format!("cannot wait for the mount process: {e}")))?;
        std::process::exit(status.code().unwrap_or(1));
    }
    if let Some(p) = &args.pid_file {
        std::fs::write(p, format!("{pid}\n")).map_err(|e| Error::local("write", p, e))?;
    }
    eprintln!(
        "running in the background (pid {pid}); stop it with 'cta-data umount {}' or 'kill {pid}'",
        args.mountpoint.display()
    );
    Ok(())
}

/// `umount MOUNTPOINT`.
pub(super) fn umount(mountpoint: &Path) -> Result<()> {
    if let Some(note) = ctadata_mount::unmount_path(mountpoint)? {
        eprintln!("{note}");
    }
    Ok(())
}
