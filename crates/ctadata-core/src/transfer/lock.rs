//! Advisory locks that make one run the owner of a file: the `.part` of a download, or the
//! lock file of an upload's destination. Two runs on one target take turns instead of
//! writing into the same file; the lock goes with the process (exit, crash or Ctrl-C).

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a waiting run asks again.
const POLL: Duration = Duration::from_millis(100);

/// An exclusive advisory lock (`flock`) on an open file, released when dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Opens `path` (created if missing, never truncated) and locks it, unless another
    /// process holds it (`Ok(None)`). After the lock is taken, the path must still name
    /// the locked file: the previous holder may have renamed or removed it meanwhile, and
    /// then the new file at that path is opened instead.
    pub(crate) fn try_acquire(path: &Path) -> std::io::Result<Option<FileLock>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
            let held = file.metadata()?;
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(FileLock {
                        file,
                        path: path.to_path_buf(),
                    }))
                }
                // Renamed into place or removed by the previous holder: open again.
                _ => continue,
            }
        }
    }

    /// Takes the lock, waiting (without blocking a worker thread) while another process
    /// holds it; `on_wait` is called once, before the first wait. Returns the lock and
    /// whether it had to wait.
    pub(crate) async fn acquire(
        path: &Path,
        on_wait: impl FnOnce(),
    ) -> std::io::Result<(FileLock, bool)> {
        let mut on_wait = Some(on_wait);
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok((lock, on_wait.is_none()));
            }
            if let Some(say) = on_wait.take() {
                say();
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The locked file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The locked path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the locked file, then releases the lock (a run waiting on it opens the
    /// path again, see [`try_acquire`](Self::try_acquire)).
    pub(crate) fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.part");
        std::fs::write(&p, b"kept").unwrap();
        let first = FileLock::try_acquire(&p).unwrap().expect("free");
        // Opened without truncation: what an interrupted run left is still there.
        assert_eq!(std::fs::read(&p).unwrap(), b"kept");
        assert!(FileLock::try_acquire(&p).unwrap().is_none());
        drop(first);
        assert!(FileLock::try_acquire(&p).unwrap().is_some());
    }

    #[test]
    fn a_lock_on_a_renamed_file_is_not_taken_for_the_path() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.part");
        let first = FileLock::try_acquire(&p).unwrap().expect("free");
        // The holder renames its file into place: the path names no locked file anymore.
        std::fs::rename(&p, d.path().join("x")).unwrap();
        let second = FileLock::try_acquire(&p).unwrap().expect("a new file");
        assert!(p.exists());
        drop(first);
        second.remove();
        assert!(!p.exists());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_the_holder_ends() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.part");
        let first = FileLock::try_acquire(&p).unwrap().expect("free");
        let p2 = p.clone();
        let waiter = tokio::spawn(async move {
            let mut said = 0;
            let (l, waited) = FileLock::acquire(&p2, || said += 1).await.unwrap();
            (l.path().to_path_buf(), waited, said)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        first.remove();
        let (path, waited, said) = waiter.await.unwrap();
        assert_eq!((path, waited, said), (p, true, 1));
    }
}
