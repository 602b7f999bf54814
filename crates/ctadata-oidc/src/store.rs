//! Per-profile files that hold secrets: the client secret and the login session.
//!
//! They live in `<config dir>/profiles/<profile>/` (mode 0700) as `client-secret` and
//! `session.json` (mode 0600). A file readable by group or others is refused, as ssh does.
//! Writes go to a temporary file in the same directory and are renamed into place, so a
//! reader never sees half a file; refreshes take an exclusive lock on `session.lock`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ctadata_core::credentials::Secret;
use ctadata_core::{AuthProblem, Error, Result};
use serde::{Deserialize, Serialize};

/// A stored login: what the provider gave, and for whom.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The issuer the tokens come from.
    pub issuer: String,
    /// The OAuth client.
    pub client_id: String,
    /// The access token.
    pub access_token: String,
    /// The refresh token, when the provider gave one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Unix time the access token expires.
    pub expires_at: i64,
    /// Granted scopes, space separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// The user (`sub`), when known.
    #[serde(default)]
    pub subject: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The secret files of one profile.
#[derive(Debug, Clone)]
pub struct ProfileStore {
    dir: PathBuf,
    profile: String,
}

fn too_open(path: &Path, mode: u32) -> Error {
    Error::Auth {
        problem: AuthProblem::Refused,
        message: format!(
            "permissions {:04o} for {} are too open: a file holding secrets must not be accessible by others",
            mode & 0o777,
            path.display()
        ),
        hint: format!("run: chmod 600 {}", path.display()),
    }
}

impl ProfileStore {
    /// The store of `profile` under `config_dir` (`~/.config/cta-data`).
    pub fn new(config_dir: &Path, profile: &str) -> Self {
        Self {
            dir: config_dir.join("profiles").join(profile),
            profile: profile.to_string(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The profile name.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// `session.json`.
    pub fn session_path(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    /// `client-secret`.
    pub fn secret_path(&self) -> PathBuf {
        self.dir.join("client-secret")
    }

    fn ensure_dir(&self) -> Result<()> {
        if !self.dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| Error::local("create directory", &self.dir, e))?;
        }
        let md = std::fs::metadata(&self.dir).map_err(|e| Error::local("read", &self.dir, e))?;
        if md.mode() & 0o077 != 0 {
            tracing::warn!(dir = %self.dir.display(), "tightening permissions to 0700");
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::local("change permissions of", &self.dir, e))?;
        }
        Ok(())
    }

    /// Reads a secret file: `None` when absent; an error when readable by others.
    fn read_private(path: &Path) -> Result<Option<String>> {
        let md = match std::fs::metadata(path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::local("read", path, e)),
        };
        if md.mode() & 0o077 != 0 {
            return Err(too_open(path, md.mode()));
        }
        std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| Error::local("read", path, e))
    }

    /// Writes a secret file atomically with mode 0600.
    fn write_private(&self, path: &Path, data: &[u8]) -> Result<()> {
        self.ensure_dir()?;
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
            std::process::id()
        ));
        let result = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|e| Error::local("write", path, e))
    }

    /// The stored client secret.
    pub fn secret(&self) -> Result<Option<Secret>> {
        Ok(Self::read_private(&self.secret_path())?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(Secret::new))
    }

    /// Stores the client secret.
    pub fn save_secret(&self, secret: &Secret) -> Result<()> {
        self.write_private(&self.secret_path(), secret.expose().as_bytes())
    }

    /// The stored session; a corrupt file is an error that says how to recover.
    pub fn session(&self) -> Result<Option<Session>> {
        let path = self.session_path();
        let Some(text) = Self::read_private(&path)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Auth {
                problem: AuthProblem::Missing,
                message: format!("the login session file {} is damaged ({e})", path.display()),
                hint: format!(
                    "log in again: cta-data --profile {} login (it replaces the file)",
                    self.profile
                ),
            })
    }

    /// Stores the session atomically.
    pub fn save_session(&self, s: &Session) -> Result<()> {
        let data = serde_json::to_vec_pretty(s)
            .map_err(|e| Error::internal("the session cannot be encoded").with_source(e))?;
        self.write_private(&self.session_path(), &data)
    }

    /// Deletes the session (true when there was one).
    pub fn remove_session(&self) -> Result<bool> {
        remove(&self.session_path())
    }

    /// Deletes the client secret (true when there was one).
    pub fn remove_secret(&self) -> Result<bool> {
        remove(&self.secret_path())
    }

    /// Takes the exclusive refresh lock (blocking); released when the guard drops.
    pub fn lock(&self) -> Result<SessionLock> {
        self.ensure_dir()?;
        let path = self.dir.join("session.lock");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::local("open", &path, e))?;
        f.lock().map_err(|e| Error::local("lock", &path, e))?;
        Ok(SessionLock { _file: f })
    }
}

fn remove(p: &Path) -> Result<bool> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::local("remove", p, e)),
    }
}

/// An exclusive lock on a profile's session; unlocked on drop (the file is closed).
#[derive(Debug)]
pub struct SessionLock {
    _file: File,
}

/// Reads the old Python client's `secret` file (plain text in 0.6, base64 in 0.7).
pub fn read_legacy_secret(config_dir: &Path) -> Result<Option<(Secret, PathBuf)>> {
    let path = config_dir.join("secret");
    let Some(raw) = ProfileStore::read_private(&path)? else {
        return Ok(None);
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    Ok(Some((Secret::new(decode_legacy(raw)), path)))
}

/// 0.7 wrote base64 of the secret; 0.6 the secret itself. Keycloak secrets are printable
/// ASCII, so a base64 decoding to printable ASCII is taken as 0.7's format.
fn decode_legacy(raw: &str) -> String {
    use base64::Engine;
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(raw) {
        if let Ok(s) = String::from_utf8(bytes) {
            if s.len() >= 8 && s.chars().all(|c| c.is_ascii_graphic()) {
                return s;
            }
        }
    }
    raw.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            issuer: "https://idp".into(),
            client_id: "c".into(),
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            expires_at: 10,
            scope: None,
            subject: Some("alice".into()),
        }
    }

    #[test]
    fn files_are_private_and_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let st = ProfileStore::new(d.path(), "cta");
        st.save_session(&session()).unwrap();
        st.save_secret(&Secret::new("s3cret")).unwrap();
        assert_eq!(st.session().unwrap(), Some(session()));
        assert_eq!(st.secret().unwrap().unwrap().expose(), "s3cret");
        assert_eq!(std::fs::metadata(st.dir()).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(st.session_path()).unwrap().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(st.secret_path()).unwrap().mode() & 0o777,
            0o600
        );
        assert!(!format!("{:?}", session()).contains("\"at\""));
        assert!(st.remove_session().unwrap());
        assert!(!st.remove_session().unwrap());
    }

    #[test]
    fn open_or_corrupt_files_are_refused_with_a_way_out() {
        let d = tempfile::tempdir().unwrap();
        let st = ProfileStore::new(d.path(), "cta");
        st.save_session(&session()).unwrap();
        std::fs::set_permissions(st.session_path(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let e = st.session().unwrap_err();
        let msg = format!("{e} {}", e.hint().unwrap());
        assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");
        std::fs::set_permissions(st.session_path(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::write(st.session_path(), "{ not json").unwrap();
        let e = st.session().unwrap_err();
        let msg = format!("{e} {}", e.hint().unwrap());
        assert!(msg.contains("damaged") && msg.contains("login"), "{msg}");
    }

    #[test]
    fn legacy_secret_formats() {
        assert_eq!(decode_legacy("plainSecretValue123"), "plainSecretValue123");
        // base64("Xy9kLmnOp0qRsTuv") as 0.7 wrote it
        assert_eq!(
            decode_legacy("WHk5a0xtbk9wMHFSc1R1dg=="),
            "Xy9kLmnOp0qRsTuv"
        );
        // a 32-character alphanumeric Keycloak secret decodes to binary: kept as it is
        assert_eq!(
            decode_legacy("Abcd1234Efgh5678Ijkl9012Mnop3456"),
            "Abcd1234Efgh5678Ijkl9012Mnop3456"
        );
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("secret"), "WHk5a0xtbk9wMHFSc1R1dg==\n").unwrap();
        std::fs::set_permissions(
            d.path().join("secret"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let (s, p) = read_legacy_secret(d.path()).unwrap().unwrap();
        assert_eq!(s.expose(), "Xy9kLmnOp0qRsTuv");
        assert_eq!(p, d.path().join("secret"));
    }

    #[test]
    fn the_lock_is_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let st = ProfileStore::new(d.path(), "cta");
        let g = st.lock().unwrap();
        let f = std::fs::File::open(st.dir().join("session.lock")).unwrap();
        assert!(f.try_lock().is_err(), "a second lock must wait");
        drop(g);
        assert!(f.try_lock().is_ok());
    }
}
