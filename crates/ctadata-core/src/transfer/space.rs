//! Free space on the local disk: checked before a download whose size is known, and named
//! when a write runs out of it.

use std::path::Path;

use super::human_bytes;
use crate::error::{Error, Result};

/// Bytes an unprivileged process may still write on the filesystem holding `dir`
/// (`statvfs`: available blocks times the fragment size).
pub(crate) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path, `st` a buffer of the right type that statvfs
    // fills in completely on success; it is read only then.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs succeeded, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Refuses a download of `need` more bytes into `dir` when only `free` bytes are left.
pub(crate) fn check(dir: &Path, need: u64, free: u64) -> Result<()> {
    if need <= free {
        return Ok(());
    }
    Err(Error::LocalIo {
        action: "download into".into(),
        path: dir.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "not enough free space: {} needed, {} free",
                human_bytes(need),
                human_bytes(free)
            ),
        ),
    })
}

/// Checks that the directory of `target` can take `need` more bytes (when the free space
/// cannot be asked for, the download just goes ahead).
pub(crate) fn ensure(target: &Path, need: u64) -> Result<()> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match free_bytes(dir) {
        Ok(free) => check(dir, need, free),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), "free space unknown: {e}");
            Ok(())
        }
    }
}

/// The error of a write that ran out of space: the `.part` was removed, and the message
/// says how much the file needs.
pub(crate) fn full(part: &Path, size: Option<u64>, e: std::io::Error) -> Error {
    if e.kind() != std::io::ErrorKind::StorageFull {
        return Error::local("write", part, e);
    }
    let need = size
        .map(|s| format!(" ({} needed for the whole file)", human_bytes(s)))
        .unwrap_or_default();
    Error::LocalIo {
        action: "write".into(),
        path: part.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("the disk is full{need}; the partial file was removed"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_larger_than_the_free_space_is_refused_with_both_figures() {
        let dir = Path::new("/data");
        assert!(check(dir, 10, 10).is_ok());
        let e = check(dir, 3 << 30, 1 << 30).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit_code::LOCAL_IO);
        let msg = e.to_string();
        assert!(
            msg.contains("/data") && msg.contains("3.0 GiB needed") && msg.contains("1.0 GiB free"),
            "{msg}"
        );
        assert!(
            e.hint().unwrap().contains("free some space"),
            "{:?}",
            e.hint()
        );
    }

    #[test]
    fn the_free_space_of_a_real_directory_is_known() {
        let d = tempfile::tempdir().unwrap();
        let free = free_bytes(d.path()).unwrap();
        assert!(free > 0);
        // More than the disk holds is refused, what fits is not.
        assert!(ensure(&d.path().join("f"), free.saturating_mul(2).max(1 << 50)).is_err());
        assert!(ensure(&d.path().join("f"), 1).is_ok());
    }

    #[test]
    fn a_full_disk_names_what_was_needed() {
        let e = full(
            Path::new("/d/f.part"),
            Some(5 << 20),
            std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"),
        );
        let msg = e.to_string();
        assert!(
            msg.contains("5.0 MiB needed") && msg.contains("removed"),
            "{msg}"
        );
        assert_eq!(e.exit_code(), crate::error::exit_code::LOCAL_IO);
    }
}
