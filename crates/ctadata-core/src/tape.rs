//! Tape: staging files from tape to disk and asking where they are, through the WLCG Tape
//! REST API (v1) that dCache's frontend serves. A backend that has it returns a
//! [`TapeOps`] from [`crate::StorageBackend::tape`].
//!
//! The API (WLCG Tape REST API v1): discovery at `/.well-known/wlcg-tape-rest-api`
//! (`{"sitename", "description", "endpoints": [{"uri", "version", "metadata"}]}`), then
//! under the endpoint `POST stage` (`{"files": [{"path", "diskLifetime"}]}`, answered `201`
//! with `{"requestId"}`), `GET stage/{id}` (the state of each file, with `Retry-After`),
//! `POST stage/{id}/cancel` and `POST release/{id}` (`{"paths": [...]}`), `DELETE
//! stage/{id}`, and `POST archiveinfo` (`{"paths": [...]}`, answered with each file's
//! `locality` or `error`). Paths are the storage's own namespace paths; a [`TapeOps`]
//! takes and gives [`RemotePath`]s relative to the profile's URL.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::path::RemotePath;
use crate::retry::Retrying;

/// Where the tape API of a storage is, as its discovery document says.
#[derive(Debug, Clone, Serialize)]
pub struct TapeEndpoint {
    /// The endpoint's base URL (stage, release and archiveinfo are below it).
    pub uri: String,
    /// The API version (`v1`).
    pub version: String,
    /// The site's name, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sitename: Option<String>,
}

/// The state of one file of a stage request (the spec's `state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StageState {
    /// Accepted, not started yet.
    Submitted,
    /// Being recalled from tape.
    Started,
    /// On disk: it can be read now.
    Completed,
    /// Could not be staged (see the file's `error`).
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// A state this client does not know (kept as the server spelled it).
    #[serde(untagged)]
    Other(String),
}

impl StageState {
    /// Parses the spec's spelling; anything else is [`StageState::Other`].
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_uppercase().as_str() {
            "SUBMITTED" | "QUEUED" => Self::Submitted,
            "STARTED" => Self::Started,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            "CANCELLED" | "CANCELED" => Self::Cancelled,
            _ => Self::Other(s.to_string()),
        }
    }

    /// The spec's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Submitted => "SUBMITTED",
            Self::Started => "STARTED",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::Other(s) => s,
        }
    }

    /// No change is to be expected any more (completed, failed or cancelled).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// One file of a stage request, as the server reports it.
#[derive(Debug, Clone, Serialize)]
pub struct StagedFile {
    /// The file, relative to the profile's URL.
    pub path: RemotePath,
    /// Where the request stands for it.
    pub state: StageState,
    /// Whether the file is on disk now, when the server says.
    #[serde(rename = "onDisk", skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    /// Why it failed, in the server's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When staging of this file started (the server's timestamp, as given).
    #[serde(rename = "startedAt", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it ended (the server's timestamp, as given).
    #[serde(rename = "finishedAt", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

impl StagedFile {
    /// The file can be read from disk now.
    pub fn is_online(&self) -> bool {
        self.state == StageState::Completed || self.on_disk == Some(true)
    }
}

/// A stage request and the state of each of its files.
#[derive(Debug, Clone, Serialize)]
pub struct StageStatus {
    /// The request's id.
    pub id: String,
    /// When the request was made (the server's timestamp).
    #[serde(rename = "createdAt", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// When the server started on it.
    #[serde(rename = "startedAt", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When every file reached a final state.
    #[serde(rename = "completedAt", skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// Each file.
    pub files: Vec<StagedFile>,
    /// How long the server asks the client to wait before asking again (`Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl StageStatus {
    /// Files on disk now.
    pub fn online(&self) -> usize {
        self.files.iter().filter(|f| f.is_online()).count()
    }

    /// Every file has reached a final state.
    pub fn is_done(&self) -> bool {
        self.files
            .iter()
            .all(|f| f.state.is_final() || f.is_online())
    }
}

/// Where a file is, as `archiveinfo` answers (the spec's `locality`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArchiveLocality {
    /// On disk only.
    Disk,
    /// On tape only: it must be staged before it is read.
    Tape,
    /// On disk and on tape.
    DiskAndTape,
    /// Lost.
    Lost,
    /// Neither on disk nor on tape (e.g. an empty file).
    None,
    /// Temporarily unavailable.
    Unavailable,
    /// A locality this client does not know (kept as the server spelled it).
    #[serde(untagged)]
    Other(String),
}

impl ArchiveLocality {
    /// Parses the spec's spelling.
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_uppercase().as_str() {
            "DISK" => Self::Disk,
            "TAPE" => Self::Tape,
            "DISK_AND_TAPE" => Self::DiskAndTape,
            "LOST" => Self::Lost,
            "NONE" => Self::None,
            "UNAVAILABLE" => Self::Unavailable,
            _ => Self::Other(s.to_string()),
        }
    }

    /// The spec's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Disk => "DISK",
            Self::Tape => "TAPE",
            Self::DiskAndTape => "DISK_AND_TAPE",
            Self::Lost => "LOST",
            Self::None => "NONE",
            Self::Unavailable => "UNAVAILABLE",
            Self::Other(s) => s,
        }
    }
}

/// One answer of `archiveinfo`: the file's locality, or why the server has none.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveInfo {
    /// The file, relative to the profile's URL.
    pub path: RemotePath,
    /// Where it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<ArchiveLocality>,
    /// Why there is no locality (e.g. no such file), in the server's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Staging and archive information, as the WLCG Tape REST API offers them.
#[async_trait]
pub trait TapeOps: Send + Sync {
    /// The tape endpoint, found through discovery once and then remembered.
    async fn endpoint(&self) -> Result<TapeEndpoint>;

    /// Asks the server to bring `paths` from tape to disk (one bulk request), pinned for
    /// `pin_lifetime` when given; returns the request's id.
    async fn stage(&self, paths: &[RemotePath], pin_lifetime: Option<Duration>) -> Result<String>;

    /// The state of stage request `id` and of each of its files.
    async fn status(&self, id: &str) -> Result<StageStatus>;

    /// Cancels staging of `paths` in request `id` (all of its files when empty).
    async fn cancel(&self, id: &str, paths: &[RemotePath]) -> Result<()>;

    /// Deletes request `id` (cancelling what is still going on).
    async fn delete(&self, id: &str) -> Result<()>;

    /// Releases the disk copies `paths` pinned by request `id` (all of its files when
    /// empty): the storage may drop them from disk.
    async fn release(&self, id: &str, paths: &[RemotePath]) -> Result<()>;

    /// Where each of `paths` is (disk, tape, both...).
    async fn archive_info(&self, paths: &[RemotePath]) -> Result<Vec<ArchiveInfo>>;
}

/// The tape operations of a backend under the retry layer, each tried again on temporary
/// failures like the backend's other requests.
#[async_trait]
impl TapeOps for Retrying {
    async fn endpoint(&self) -> Result<TapeEndpoint> {
        let t = inner_tape(self)?;
        self.run("tape discovery", &RemotePath::root(), || t.endpoint())
            .await
    }

    async fn stage(&self, paths: &[RemotePath], pin: Option<Duration>) -> Result<String> {
        let t = inner_tape(self)?;
        let first = paths.first().cloned().unwrap_or_default();
        self.run("stage", &first, || t.stage(paths, pin)).await
    }

    async fn status(&self, id: &str) -> Result<StageStatus> {
        let t = inner_tape(self)?;
        self.run("stage status", &RemotePath::root(), || t.status(id))
            .await
    }

    async fn cancel(&self, id: &str, paths: &[RemotePath]) -> Result<()> {
        let t = inner_tape(self)?;
        self.run("stage cancel", &RemotePath::root(), || t.cancel(id, paths))
            .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let t = inner_tape(self)?;
        self.run("stage delete", &RemotePath::root(), || t.delete(id))
            .await
    }

    async fn release(&self, id: &str, paths: &[RemotePath]) -> Result<()> {
        let t = inner_tape(self)?;
        self.run("release", &RemotePath::root(), || t.release(id, paths))
            .await
    }

    async fn archive_info(&self, paths: &[RemotePath]) -> Result<Vec<ArchiveInfo>> {
        let t = inner_tape(self)?;
        let first = paths.first().cloned().unwrap_or_default();
        self.run("archiveinfo", &first, || t.archive_info(paths))
            .await
    }
}

fn inner_tape(r: &Retrying) -> Result<&dyn TapeOps> {
    r.inner()
        .tape()
        .ok_or_else(|| crate::backend::unsupported("stage", r.inner().capabilities().backend))
}

/// Parses a duration as users type it: `90` or `90s`, `30m`, `12h`, `7d`, `2w`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// A duration as ISO 8601 (the spec's `diskLifetime`): `PT90S`, `PT12H`, `P1D`.
pub fn iso8601(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86_400) {
        format!("P{}D", s / 86_400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("PT{}H", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("PT{}M", s / 60)
    } else {
        format!("PT{s}S")
    }
}

/// The error for a file that is only on tape when it was to be read.
pub fn on_tape(path: &RemotePath) -> Error {
    let arg = shell_word(&path.to_string());
    Error::Tape {
        path: path.to_string(),
        message: format!("{path} is on tape only (NEARLINE): reading it would wait until the storage stages it"),
        hint: format!(
            "stage it first with 'cta-data stage {arg}' (then 'cta-data stage status ID'), or download with 'cta-data get --stage {arg}'"
        ),
    }
}

/// A path as one shell word for a hint: as it is when it is plain, else in double quotes.
fn shell_word(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        s.to_string()
    } else {
        format!(
            "\"{}\"",
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
                .replace('`', "\\`")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_quote_paths_for_the_shell() {
        assert_eq!(shell_word("/cta/a.h5"), "/cta/a.h5");
        assert_eq!(shell_word("/cta/run 1/é.h5"), "\"/cta/run 1/é.h5\"");
        assert_eq!(shell_word("/a\"$b"), "\"/a\\\"\\$b\"");
        let e = on_tape(&RemotePath::parse("lst/run 1/a.h5").unwrap());
        assert!(
            e.hint()
                .unwrap()
                .contains("'cta-data stage \"/lst/run 1/a.h5\"'"),
            "{e:?}"
        );
    }

    #[test]
    fn durations_parse_and_print_as_iso8601() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("3y"), None);
        assert_eq!(iso8601(Duration::from_secs(86_400)), "P1D");
        assert_eq!(iso8601(Duration::from_secs(7200)), "PT2H");
        assert_eq!(iso8601(Duration::from_secs(90)), "PT90S");
    }

    #[test]
    fn states_and_localities_keep_unknown_spellings() {
        assert_eq!(StageState::parse("completed"), StageState::Completed);
        assert_eq!(StageState::parse("WEIRD").as_str(), "WEIRD");
        assert!(StageState::Failed.is_final());
        assert!(!StageState::Started.is_final());
        assert_eq!(
            ArchiveLocality::parse("DISK_AND_TAPE"),
            ArchiveLocality::DiskAndTape
        );
        assert_eq!(
            serde_json::to_value(ArchiveLocality::Other("X".into())).unwrap(),
            "X"
        );
        assert_eq!(
            serde_json::to_value(StageState::Started).unwrap(),
            "STARTED"
        );
    }
}
