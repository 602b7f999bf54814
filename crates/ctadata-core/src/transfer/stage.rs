//! `get --stage`: files only on tape (`NEARLINE`) are staged in one bulk request, the
//! request is polled at the interval the server asks for (`Retry-After`, else a growing
//! backoff, capped), and each file is handed on as soon as it is on disk, or with the
//! server's reason when it cannot be staged.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::StreamExt;

use super::Progress;
use crate::backend::StorageBackend;
use crate::entry::{Entry, Locality};
use crate::error::{Error, Result};
use crate::path::RemotePath;
use crate::tape::StageState;

/// How `get --stage` stages.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StageOptions {
    /// Give up on files still on tape after this long (`None`: wait as long as it takes).
    pub timeout: Option<Duration>,
    /// How long the staged files stay pinned on disk (the request's `diskLifetime`).
    pub pin: Option<Duration>,
    /// The first wait between two status requests when the server suggests none.
    pub first_poll: Duration,
    /// The longest wait between two status requests, whatever the server suggests.
    pub max_poll: Duration,
}

impl Default for StageOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            pin: None,
            first_poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(60),
        }
    }
}

impl StageOptions {
    /// Staging that gives up after `timeout` (when given).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Staged files pinned for `pin` (when given).
    pub fn with_pin(mut self, pin: Option<Duration>) -> Self {
        self.pin = pin;
        self
    }
}

/// What staging made of one file.
#[derive(Debug)]
pub enum Staged {
    /// On disk now: download it (its locality says so).
    Online(Entry),
    /// Cannot be had: the server's reason, or the timeout.
    Failed(Entry, Error),
}

/// True for a file that must be staged before it is read.
pub fn needs_staging(e: &Entry) -> bool {
    e.is_file() && e.locality == Some(Locality::Nearline)
}

struct State {
    backend: Arc<dyn StorageBackend>,
    opts: StageOptions,
    progress: Arc<dyn Progress>,
    pending: HashMap<RemotePath, Entry>,
    total: usize,
    online: usize,
    failed: usize,
    id: Option<String>,
    started: Instant,
    backoff: Duration,
    next_wait: Duration,
    out: VecDeque<Staged>,
}

impl State {
    fn fail_all(&mut self, why: impl Fn(&RemotePath) -> Error) {
        let mut all: Vec<Entry> = self.pending.drain().map(|(_, e)| e).collect();
        all.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        for e in all {
            let err = why(&e.path);
            self.failed += 1;
            self.out.push_back(Staged::Failed(e, err));
        }
    }

    fn report(&self) {
        if let Some(id) = &self.id {
            self.progress
                .staging(id, self.online, self.failed, self.total);
        }
    }

    /// One step: make the request, or wait and read its state.
    async fn step(&mut self) {
        let Some(tape) = self.backend.tape() else {
            let backend = self.backend.capabilities().backend;
            self.fail_all(|_| crate::backend::unsupported("get --stage", backend));
            return;
        };
        let Some(id) = self.id.clone() else {
            let mut paths: Vec<RemotePath> = self.pending.keys().cloned().collect();
            paths.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            match tape.stage(&paths, self.opts.pin).await {
                Ok(id) => {
                    tracing::info!(request = %id, files = paths.len(), "staging from tape");
                    self.id = Some(id);
                    self.started = Instant::now();
                    self.report();
                }
                Err(e) => {
                    let text = e.to_string();
                    let hint = e.hint().unwrap_or_default();
                    let tape_kind = matches!(e, Error::Tape { .. });
                    self.fail_all(|p| {
                        if tape_kind {
                            Error::Tape {
                                path: p.to_string(),
                                message: format!("{p} is on tape and cannot be staged: {text}"),
                                hint: hint.clone(),
                            }
                        } else {
                            Error::Tape {
                                path: p.to_string(),
                                message: format!("{p} is on tape and the stage request failed: {text}"),
                                hint: "check the error above; 'cta-data stage PATH' asks for staging alone".into(),
                            }
                        }
                    });
                }
            }
            return;
        };
        if let Some(limit) = self.opts.timeout {
            let spent = self.started.elapsed();
            if spent >= limit {
                self.fail_all(|p| Error::Tape {
                    path: p.to_string(),
                    message: format!(
                        "{p} is still on tape after {} (stage request {id})",
                        show(limit)
                    ),
                    hint: format!(
                        "the request goes on at the storage: follow it with 'cta-data stage status {id}', then run the same get again (or give a longer --stage-timeout)"
                    ),
                });
                return;
            }
            let wait = self.next_wait.min(limit - spent);
            tokio::time::sleep(wait).await;
        } else {
            tokio::time::sleep(self.next_wait).await;
        }
        match tape.status(&id).await {
            Ok(st) => {
                for f in &st.files {
                    let Some(e) = self.pending.get(&f.path) else {
                        continue;
                    };
                    if f.is_online() {
                        let mut e = e.clone();
                        self.pending.remove(&f.path);
                        e.locality = Some(Locality::OnlineAndNearline);
                        self.online += 1;
                        self.out.push_back(Staged::Online(e));
                    } else if matches!(f.state, StageState::Failed | StageState::Cancelled) {
                        let e = e.clone();
                        self.pending.remove(&f.path);
                        let reason = f
                            .error
                            .clone()
                            .unwrap_or_else(|| f.state.as_str().to_lowercase());
                        self.failed += 1;
                        let p = e.path.clone();
                        self.out.push_back(Staged::Failed(
                            e,
                            Error::Tape {
                                path: p.to_string(),
                                message: format!(
                                    "{p} could not be staged from tape ({}): {reason}",
                                    f.state.as_str()
                                ),
                                hint: format!(
                                    "the storage gave this reason; 'cta-data stage status {id}' shows the request, and the data center can say more"
                                ),
                            },
                        ));
                    }
                }
                self.report();
                // The server's interval when it gives one, else a growing backoff; both
                // capped.
                self.next_wait = match st.retry_after {
                    Some(d) => d.max(Duration::from_millis(200)),
                    None => {
                        let w = self.backoff;
                        self.backoff = (self.backoff * 3 / 2).min(self.opts.max_poll);
                        w
                    }
                }
                .min(self.opts.max_poll);
            }
            Err(e) => {
                let text = e.to_string();
                self.fail_all(|p| Error::Tape {
                    path: p.to_string(),
                    message: format!("{p}: following stage request {id} failed: {text}"),
                    hint: format!(
                        "check it with 'cta-data stage status {id}', then run the same get again"
                    ),
                });
            }
        }
    }
}

/// A duration for messages: `90 s`, `5 min`, `2 h`.
fn show(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Stages `entries` (files on tape) in one request and yields each as it comes online or
/// fails. The stream ends when every file has been handed on.
pub fn stage_stream(
    backend: Arc<dyn StorageBackend>,
    entries: Vec<Entry>,
    opts: StageOptions,
    progress: Arc<dyn Progress>,
) -> BoxStream<'static, Staged> {
    let total = entries.len();
    let state = State {
        backend,
        backoff: opts.first_poll,
        next_wait: Duration::ZERO,
        opts,
        progress,
        pending: entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
        total,
        online: 0,
        failed: 0,
        id: None,
        started: Instant::now(),
        out: VecDeque::new(),
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(s) = st.out.pop_front() {
                return Some((s, st));
            }
            if st.pending.is_empty() {
                return None;
            }
            st.step().await;
        }
    })
    .boxed()
}

/// Stages one file and waits until it is on disk: its entry, now online, or why not.
pub async fn stage_one(
    backend: Arc<dyn StorageBackend>,
    entry: Entry,
    opts: StageOptions,
    progress: Arc<dyn Progress>,
) -> Result<Entry> {
    let mut s = stage_stream(backend, vec![entry.clone()], opts, progress);
    match s.next().await {
        Some(Staged::Online(e)) => Ok(e),
        Some(Staged::Failed(_, err)) => Err(err),
        None => Ok(entry),
    }
}
