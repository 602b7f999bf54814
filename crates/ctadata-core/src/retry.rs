//! The one place where cta-data tries again: a layer around any [`StorageBackend`].
//!
//! Backends never retry. They classify each failure once, where the answer or the I/O error
//! is read ([`Error::is_temporary`], [`Error::retry_after`]); [`Retrying`] applies one
//! [`RetryPolicy`] to every operation, and resumes a broken download with `Range` from the
//! byte where it stopped (guarded by the file's ETag), counting those resumptions against the
//! same attempts. Nothing above it (transfer engine, CLI, object_store adapter) retries again,
//! so attempts never multiply.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;

use crate::backend::{
    ByteRange, ByteStream, Capabilities, Download, EntryStream, GetOptions, PutOptions, PutOutcome,
    StorageBackend, Upload,
};
use crate::checksum::Checksum;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::path::RemotePath;

/// How often and how patiently an operation is tried.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: never try again).
    pub max_attempts: u32,
    /// The first pause; each retry doubles it (with up to 50 % jitter).
    pub base_delay: Duration,
    /// The longest pause (also caps a server's `Retry-After`).
    pub max_delay: Duration,
    /// No new attempt starts after this long since the operation began.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            deadline: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// A policy that tries `max_attempts` times in all, with the default pauses.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// The same policy with other pauses (tests use short ones).
    pub fn with_delays(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max;
        self
    }

    /// The same policy with another total deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The pause before retry number `retry` (0-based), with up to 50 % jitter, or the
    /// server's `Retry-After` when it gave one.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_delay);
        }
        let exp = self.base_delay.saturating_mul(1u32 << retry.min(16));
        let capped = exp.min(self.max_delay);
        let jitter = capped.mul_f64(fastrand::f64() * 0.5);
        (capped + jitter).min(self.max_delay)
    }
}

/// HTTP statuses worth another try: timeouts, rate limiting, server and gateway trouble.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Parses `Retry-After` (seconds or an HTTP date).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Says which attempt gave up, in the words of a temporary error's message.
fn gave_up(e: Error, attempt: u32, max: u32) -> Error {
    if max <= 1 || !e.is_temporary() {
        return e;
    }
    let note = format!(" (attempt {attempt} of {max})");
    match e {
        Error::Transport {
            target,
            message,
            temporary,
            retry_after,
            source,
        } => Error::Transport {
            target,
            message: message + &note,
            temporary,
            retry_after,
            source,
        },
        Error::Protocol {
            path,
            status,
            message,
            source,
        } => Error::Protocol {
            path,
            status,
            message: message + &note,
            source,
        },
        other => other,
    }
}

/// Counts attempts of one operation against a policy.
#[derive(Debug, Clone)]
struct Budget {
    policy: RetryPolicy,
    started: Instant,
    attempt: u32,
}

impl Budget {
    fn new(policy: &RetryPolicy) -> Self {
        Self {
            policy: policy.clone(),
            started: Instant::now(),
            attempt: 1,
        }
    }

    /// The pause before the next attempt after `e`, or `None` when `e` is final.
    fn next(&mut self, e: &Error) -> Option<Duration> {
        if !e.is_temporary() || self.attempt >= self.policy.max_attempts {
            return None;
        }
        let d = self.policy.delay(self.attempt - 1, e.retry_after());
        if self.started.elapsed() + d > self.policy.deadline {
            return None;
        }
        self.attempt += 1;
        Some(d)
    }

    fn gave_up(&self, e: Error) -> Error {
        gave_up(e, self.attempt, self.policy.max_attempts)
    }
}

/// Any backend, with every operation tried again on temporary failures under one policy.
#[derive(Debug, Clone)]
pub struct Retrying {
    inner: Arc<dyn StorageBackend>,
    policy: RetryPolicy,
}

impl Retrying {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn StorageBackend>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// Wraps `inner` and returns it as a backend again.
    pub fn wrap(inner: Arc<dyn StorageBackend>, policy: RetryPolicy) -> Arc<dyn StorageBackend> {
        Arc::new(Self::new(inner, policy))
    }

    /// The policy applied.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The backend underneath.
    pub fn inner(&self) -> &Arc<dyn StorageBackend> {
        &self.inner
    }

    pub(crate) async fn run<T, F, Fut>(&self, op: &str, path: &RemotePath, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_counted(op, path, f).await.map(|(v, _)| v)
    }

    /// [`Retrying::run`], also handing back the attempts spent (a read goes on counting
    /// against them while its body streams).
    async fn run_counted<T, F, Fut>(
        &self,
        op: &str,
        path: &RemotePath,
        mut f: F,
    ) -> Result<(T, Budget)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut budget = Budget::new(&self.policy);
        loop {
            match f().await {
                Ok(v) => return Ok((v, budget)),
                Err(e) => match budget.next(&e) {
                    Some(delay) => {
                        tracing::info!(
                            "{op} {path}: {e}; retrying in {:.1} s (attempt {} of {})",
                            delay.as_secs_f64(),
                            budget.attempt,
                            self.policy.max_attempts
                        );
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(budget.gave_up(e)),
                },
            }
        }
    }
}

#[async_trait]
impl StorageBackend for Retrying {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn server_notes(&self) -> crate::backend::ServerNotes {
        self.inner.server_notes()
    }

    // ---- server-side copy (issue 14, cp): forwarded; a COPY is not replayed (a failed
    // third-party copy may have left a partial file that the caller removes first) ----
    fn server_copy(&self) -> Option<&dyn crate::tpc::ServerCopyOps> {
        self.inner.server_copy()
    }
    // ---- end of server-side copy ----

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.run("stat", path, || self.inner.stat(path)).await
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.run("list", dir, || self.inner.list(dir)).await
    }

    async fn checksums(&self, path: &RemotePath) -> Result<Vec<Checksum>> {
        self.run("check", path, || self.inner.checksums(path)).await
    }

    async fn get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
        let (d, budget) = self
            .run_counted("read", path, || self.inner.get(path, opts.clone()))
            .await?;
        // A broken body resumes only where the same file can be recognised: by its ETag,
        // else by its size and modification time.
        let resumable = self.inner.capabilities().ranged_reads
            && (d.etag.is_some() || (d.size.is_some() && d.mtime.is_some()));
        let Download {
            path: dpath,
            size,
            range,
            mtime,
            etag,
            checksums,
            stream,
        } = d;
        let stream = if resumable {
            resume_stream(Resume {
                inner: self.inner.clone(),
                path: path.clone(),
                etag: etag.clone(),
                known: opts.known.clone(),
                size,
                mtime,
                pos: range.as_ref().map(|r| r.start).unwrap_or(0),
                since_open: 0,
                end: range.as_ref().map(|r| r.end).or(size),
                budget,
                stream: Some(stream),
                done: false,
            })
        } else {
            // Without ranges or an ETag a broken body cannot be resumed safely: say which
            // attempt it was and let the caller keep what arrived.
            stream
                .map(move |r| r.map_err(|e| budget.gave_up(e)))
                .boxed()
        };
        Ok(Download {
            path: dpath,
            size,
            range,
            mtime,
            etag,
            checksums,
            stream,
        })
    }

    async fn put(&self, path: &RemotePath, body: Upload, opts: PutOptions) -> Result<PutOutcome> {
        self.run("upload", path, || {
            self.inner.put(path, body.clone(), opts.clone())
        })
        .await
    }

    async fn mkdir(&self, path: &RemotePath, parents: bool) -> Result<()> {
        self.run("mkdir", path, || self.inner.mkdir(path, parents))
            .await
    }

    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<()> {
        self.run("delete", path, || self.inner.delete(path, recursive))
            .await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, overwrite: bool) -> Result<()> {
        self.run("move", from, || self.inner.rename(from, to, overwrite))
            .await
    }

    // ---- tape (issue 14, tape): the tape operations go through the retry layer too ----
    fn tape(&self) -> Option<&dyn crate::tape::TapeOps> {
        self.inner.tape().map(|_| self as &dyn crate::tape::TapeOps)
    }
    // ---- end of tape ----
    // ---- share (issue 14, share): share links go through the retry layer too ----
    fn share_links(&self) -> Option<&dyn crate::share::ShareOps> {
        self.inner
            .share_links()
            .map(|_| self as &dyn crate::share::ShareOps)
    }
    // ---- end of share ----
}

/// Bytes a read must move before a fault counts as a new one rather than another attempt.
const PROGRESS: u64 = 1 << 20;

/// The state of a download that resumes where it broke.
struct Resume {
    inner: Arc<dyn StorageBackend>,
    path: RemotePath,
    etag: Option<String>,
    known: Option<Entry>,
    /// The file's size and time when the read began (to recognise it without an ETag).
    size: Option<u64>,
    mtime: Option<SystemTime>,
    /// The absolute position of the next byte.
    pos: u64,
    /// Bytes received since the body was last opened.
    since_open: u64,
    /// One past the last byte wanted, when known.
    end: Option<u64>,
    budget: Budget,
    stream: Option<ByteStream>,
    done: bool,
}

fn resume_stream(state: Resume) -> ByteStream {
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let Some(stream) = s.stream.as_mut() else {
                // Reopen from `pos`.
                let range = match s.end {
                    Some(end) if s.pos >= end => return None,
                    Some(end) => ByteRange::bounded(s.pos, end),
                    None => Ok(ByteRange::From(s.pos)),
                };
                let mut opts = GetOptions::default();
                if let Some(k) = &s.known {
                    opts = opts.with_known(k.clone());
                }
                if let Some(t) = &s.etag {
                    opts = opts.with_if_match(t.clone());
                }
                let opened = match range {
                    Ok(r) => s.inner.get(&s.path, opts.with_range(r)).await,
                    Err(e) => Err(e),
                };
                let changed = |d: &Download| {
                    (d.size.is_some() && d.size != s.size)
                        || (d.mtime.is_some() && s.mtime.is_some() && d.mtime != s.mtime)
                };
                match opened {
                    Ok(d) if changed(&d) => {
                        s.done = true;
                        let e = Error::conflict(
                            &s.path,
                            "the file changed on the server while it was read",
                            "run the command again to read the new version",
                        );
                        return Some((Err(e), s));
                    }
                    Ok(d) if d.range.as_ref().map(|r| r.start) == Some(s.pos) => {
                        s.stream = Some(d.stream);
                        s.since_open = 0;
                        continue;
                    }
                    Ok(d) => {
                        s.done = true;
                        let e = Error::protocol(
                            &s.path,
                            Some(206),
                            format!(
                                "asked to resume at byte {} the server sent {}",
                                s.pos,
                                d.range
                                    .map(|r| format!("bytes {}..{}", r.start, r.end))
                                    .unwrap_or_else(|| "the whole file".into())
                            ),
                        );
                        return Some((Err(e), s));
                    }
                    Err(e) => match s.budget.next(&e) {
                        Some(delay) => {
                            tracing::info!(
                                "read {}: {e}; trying again in {:.1} s (attempt {} of {})",
                                s.path,
                                delay.as_secs_f64(),
                                s.budget.attempt,
                                s.budget.policy.max_attempts
                            );
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        None => {
                            s.done = true;
                            let e = s.budget.gave_up(e);
                            return Some((Err(e), s));
                        }
                    },
                }
            };
            match stream.next().await {
                Some(Ok(b)) => {
                    s.pos += b.len() as u64;
                    s.since_open += b.len() as u64;
                    return Some((Ok(b), s));
                }
                None => return None,
                Some(Err(e)) => {
                    // A read that made progress since it was opened meets a new fault:
                    // it gets the whole policy again (a long transfer over a flaky link
                    // goes on; one that breaks before moving a MiB runs out of attempts).
                    if s.since_open >= PROGRESS {
                        s.budget = Budget::new(&s.budget.policy);
                    }
                    let next = s.budget.next(&e);
                    match next {
                        Some(delay) => {
                            tracing::info!(
                                "read {}: {e}; resuming at byte {} in {:.1} s (attempt {} of {})",
                                s.path,
                                s.pos,
                                delay.as_secs_f64(),
                                s.budget.attempt,
                                s.budget.policy.max_attempts
                            );
                            s.stream = None;
                            tokio::time::sleep(delay).await;
                        }
                        None => {
                            s.done = true;
                            let e = s.budget.gave_up(e);
                            return Some((Err(e), s));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    use bytes::Bytes;
    use std::sync::Mutex;

    use crate::entry::EntryKind;

    /// A backend whose reads break where a script says, recording what was asked.
    #[derive(Debug)]
    struct Flaky {
        data: Vec<u8>,
        /// For each successive get: break after this many bytes (`None`: deliver all).
        breaks: Mutex<VecDeque<Option<u64>>>,
        asked: Mutex<Vec<(Option<ByteRange>, Option<String>)>>,
        /// The size reported from the n-th get on (a file replaced meanwhile).
        grows_at: Option<usize>,
    }

    impl Flaky {
        fn new(len: usize, breaks: &[Option<u64>]) -> Arc<Self> {
            Arc::new(Self {
                data: (0..len).map(|i| (i % 251) as u8).collect(),
                breaks: Mutex::new(breaks.iter().copied().collect()),
                asked: Mutex::new(Vec::new()),
                grows_at: None,
            })
        }
    }

    #[async_trait]
    impl StorageBackend for Flaky {
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                backend: "flaky",
                write: false,
                mkdir: false,
                delete: false,
                rename: false,
                ranged_reads: true,
                etags: true,
                checksums: Vec::new(),
                default_jobs: 1,
                default_streams: 1,
            }
        }
        async fn stat(&self, path: &RemotePath) -> Result<Entry> {
            Ok(Entry::new(path.clone(), EntryKind::File))
        }
        async fn list(&self, _: &RemotePath) -> Result<EntryStream> {
            Ok(futures::stream::empty().boxed())
        }
        async fn get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
            let n = {
                let mut a = self.asked.lock().unwrap();
                a.push((opts.range, opts.if_match.clone()));
                a.len()
            };
            let size = self.data.len() as u64 + u64::from(self.grows_at.is_some_and(|g| n >= g));
            let r = opts.range.map(|r| r.resolve(size)).unwrap_or(0..size);
            let brk = self.breaks.lock().unwrap().pop_front().flatten();
            let body =
                self.data[r.start as usize..r.end.min(self.data.len() as u64) as usize].to_vec();
            let cut = brk
                .map(|b| (b as usize).min(body.len()))
                .unwrap_or(body.len());
            let mut chunks: Vec<Result<Bytes>> = body[..cut]
                .chunks(64 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            if brk.is_some() {
                chunks.push(Err(Error::transport("flaky", "the connection was reset")));
            }
            Ok(Download {
                path: path.clone(),
                size: Some(size),
                range: Some(r),
                mtime: None,
                etag: Some("\"v1\"".into()),
                checksums: Vec::new(),
                stream: futures::stream::iter(chunks).boxed(),
            })
        }
        async fn put(&self, _: &RemotePath, _: Upload, _: PutOptions) -> Result<PutOutcome> {
            Err(Error::internal("not here"))
        }
        async fn mkdir(&self, _: &RemotePath, _: bool) -> Result<()> {
            Err(Error::internal("not here"))
        }
        async fn delete(&self, _: &RemotePath, _: bool) -> Result<()> {
            Err(Error::internal("not here"))
        }
        async fn rename(&self, _: &RemotePath, _: &RemotePath, _: bool) -> Result<()> {
            Err(Error::internal("not here"))
        }
    }

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy::attempts(attempts).with_delays(Duration::ZERO, Duration::ZERO)
    }

    async fn read_all(b: &Retrying) -> Result<Vec<u8>> {
        let d = b
            .get(&RemotePath::parse("f").unwrap(), GetOptions::default())
            .await?;
        let mut out = Vec::new();
        let mut s = d.stream;
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_broken_body_resumes_at_its_last_byte_under_the_etag() {
        let f = Flaky::new(300_000, &[Some(100_000), Some(50_000), None]);
        let b = Retrying::new(f.clone(), quick(3));
        assert_eq!(read_all(&b).await.unwrap(), f.data);
        let asked = f.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 3);
        assert_eq!(asked[0], (None, None));
        assert_eq!(
            asked[1],
            (
                Some(ByteRange::bounded(100_000, 300_000).unwrap()),
                Some("\"v1\"".into())
            )
        );
        assert_eq!(
            asked[2].0,
            Some(ByteRange::bounded(150_000, 300_000).unwrap())
        );
    }

    #[tokio::test]
    async fn a_body_that_keeps_breaking_early_runs_out_of_attempts() {
        let f = Flaky::new(300_000, &[Some(10); 10]);
        let b = Retrying::new(f.clone(), quick(3));
        let e = read_all(&b).await.unwrap_err();
        assert!(e.to_string().ends_with("(attempt 3 of 3)"), "{e}");
        assert_eq!(f.asked.lock().unwrap().len(), 3, "one open per attempt");
    }

    #[tokio::test]
    async fn progress_earns_a_fresh_count() {
        // Four breaks with 2 attempts allowed: each comes after more than a MiB had moved,
        // so a long transfer over a flaky link goes on.
        let mib = 1 << 20;
        let f = Flaky::new(6 * mib, &[Some(mib as u64 + 1); 4]);
        let b = Retrying::new(f.clone(), quick(2));
        assert_eq!(read_all(&b).await.unwrap().len(), 6 * mib);
        assert_eq!(f.asked.lock().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn a_file_replaced_meanwhile_is_not_spliced() {
        let f = Arc::new(Flaky {
            grows_at: Some(2),
            ..Arc::try_unwrap(Flaky::new(300_000, &[Some(1000), None])).unwrap()
        });
        let b = Retrying::new(f.clone(), quick(3));
        let e = read_all(&b).await.unwrap_err();
        assert!(matches!(e, Error::Conflict { .. }), "{e}");
        assert!(e.to_string().contains("changed on the server"), "{e}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::attempts(6)
            .with_delays(Duration::from_millis(100), Duration::from_secs(1));
        let d0 = p.delay(0, None);
        assert!(
            d0 >= Duration::from_millis(100) && d0 <= Duration::from_millis(150),
            "{d0:?}"
        );
        let d3 = p.delay(3, None);
        assert!(d3 >= Duration::from_millis(800), "{d3:?}");
        assert!(p.delay(10, None) <= Duration::from_secs(1));
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(7))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert!(retryable_status(503) && retryable_status(500) && !retryable_status(403));
    }

    #[test]
    fn budget_stops_at_attempts_and_deadline() {
        let p = RetryPolicy::attempts(3).with_delays(Duration::ZERO, Duration::ZERO);
        let mut b = Budget::new(&p);
        let e = Error::transport("h", "reset");
        assert!(b.next(&e).is_some());
        assert!(b.next(&e).is_some());
        assert!(b.next(&e).is_none(), "3 attempts in all");
        let msg = b.gave_up(Error::transport("h", "reset")).to_string();
        assert!(msg.ends_with("(attempt 3 of 3)"), "{msg}");
        // A final error is never retried.
        let mut b = Budget::new(&p);
        assert!(b.next(&Error::not_found("/x")).is_none());
        // Nothing starts after the deadline.
        let p = RetryPolicy::attempts(10)
            .with_delays(Duration::from_secs(5), Duration::from_secs(5))
            .with_deadline(Duration::from_secs(1));
        let mut b = Budget::new(&p);
        assert!(b.next(&e).is_none());
    }
}
