//! `ctadata._native`: the Rust engine under the Python package `ctadata`.
//!
//! Every call runs on one process-wide tokio runtime with the GIL released; the calling
//! thread wakes every 100 ms to let Python handle signals, so Ctrl-C raises
//! `KeyboardInterrupt` and drops the transfer (its `.part` file stays for a rerun). The
//! caller's own asyncio loop, if any, is never touched.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ctadata::config::{self, EnvSnapshot, LoadOptions};
use ctadata::porting::{Client, Stored};
use ctadata::transfer::{FileOutcome, Progress, Summary};
use ctadata::{ByteRange, Entry, EntryKind, Error, GetOptions, PutOutcome, RemotePath};
use futures::TryStreamExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

/// How often the waiting thread lets Python run its signal handlers.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Listings in flight at once for a recursive `list_dir` (its `n_threads`) by default.
const WALK_CONCURRENCY: usize = 4;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The one runtime every call runs on, started at the first call.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ctadata-engine")
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the async runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// What a transfer has done so far, for the caller's progress callback.
#[derive(Default)]
struct Counts {
    /// Bytes of the files announced as a whole (tree transfers).
    discovered: u64,
    /// Sizes of the files started without being announced (single files).
    sizes: HashMap<String, u64>,
    /// Bytes of the files still moving, by name.
    moving: HashMap<String, u64>,
    /// Bytes of the files that ended.
    finished: u64,
}

/// A progress sink that only counts (the GIL is never taken while data moves); the
/// waiting thread reads it every 100 ms and calls the Python callback.
#[derive(Default)]
struct Counter {
    counts: Mutex<Counts>,
}

impl Counter {
    /// (bytes done, bytes in all) so far.
    fn snapshot(&self) -> (u64, u64) {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let done = c.finished + c.moving.values().sum::<u64>();
        let total = c.discovered + c.sizes.values().sum::<u64>();
        (done, total.max(done))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Progress for Counter {
    fn discovered(&self, _files: u64, bytes: u64) {
        self.with(|c| c.discovered += bytes);
    }

    fn started(&self, name: &str, size: Option<u64>, offset: u64) {
        self.with(|c| {
            if c.discovered == 0 {
                c.sizes.insert(name.to_string(), size.unwrap_or(0));
            }
            // A restart (retry, resume) counts from where it restarts.
            c.moving.insert(name.to_string(), offset);
        });
    }

    fn advanced(&self, name: &str, bytes: u64) {
        self.with(|c| *c.moving.entry(name.to_string()).or_default() += bytes);
    }

    fn finished(&self, name: &str, outcome: &FileOutcome) {
        self.with(|c| {
            let moved = c.moving.remove(name).unwrap_or(0);
            c.finished += match outcome {
                FileOutcome::Done(d) => d.size.max(moved),
                _ => moved,
            };
        });
    }
}

/// A call's progress: the engine's counter and the Python callable to tell.
struct Report<'py> {
    counter: Arc<Counter>,
    callback: Bound<'py, PyAny>,
    last: Option<(u64, u64)>,
}

impl Report<'_> {
    /// Calls the callback with (done, total) when they changed.
    fn tell(&mut self) -> PyResult<()> {
        let now = self.counter.snapshot();
        if self.last != Some(now) {
            self.last = Some(now);
            self.callback.call1(now)?;
        }
        Ok(())
    }
}

/// The client to run one call on: `base`, with a counter when there is a callback.
fn with_report<'py>(
    base: &Arc<Client>,
    callback: Option<Bound<'py, PyAny>>,
) -> (Arc<Client>, Option<Report<'py>>) {
    match callback.filter(|c| !c.is_none()) {
        None => (base.clone(), None),
        Some(callback) => {
            let counter = Arc::new(Counter::default());
            let client = (**base).clone().with_progress(counter.clone());
            let report = Report {
                counter,
                callback,
                last: None,
            };
            (Arc::new(client), Some(report))
        }
    }
}

/// The Python exception for an engine error (built by `ctadata.errors._from_native`), with
/// the CLI's message and hint; `certificate` marks a certificate upload's failure.
fn to_py(py: Python<'_>, e: &Error, certificate: bool) -> PyErr {
    let made = py.import("ctadata.errors").and_then(|m| {
        m.getattr("_from_native")?.call1((
            e.kind(),
            e.exit_code(),
            e.to_string(),
            e.hint(),
            certificate,
        ))
    });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// Runs `fut` on the runtime with the GIL released, checking for signals every 100 ms; a
/// signal's exception (KeyboardInterrupt) drops the future and is raised.
fn run<T, F>(py: Python<'_>, certificate: bool, fut: F) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = ctadata::Result<T>> + Send + 'static,
{
    run_reporting(py, certificate, None, fut)
}

/// [`run`], telling `report`'s callback how the transfer goes at each wake-up (at most every
/// 100 ms, and once at the end); an exception from the callback stops the transfer.
fn run_reporting<T, F>(
    py: Python<'_>,
    certificate: bool,
    mut report: Option<Report<'_>>,
    fut: F,
) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = ctadata::Result<T>> + Send + 'static,
{
    let rt = runtime()?;
    let (tx, mut rx) = mpsc::channel();
    let task = rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    loop {
        let (back, got) = py.allow_threads(move || {
            let got = rx.recv_timeout(SIGNAL_CHECK);
            (rx, got)
        });
        rx = back;
        match got {
            Ok(result) => {
                let value = result.map_err(|e| to_py(py, &e, certificate))?;
                if let Some(r) = report.as_mut() {
                    r.tell()?;
                }
                return Ok(value);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let checked = py
                    .check_signals()
                    .and_then(|()| report.as_mut().map_or(Ok(()), Report::tell));
                if let Err(stop) = checked {
                    task.abort();
                    return Err(stop);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err(
                    "the engine's task ended without an answer (a bug: please report it)",
                ))
            }
        }
    }
}

/// An entry as the old client's listing gave it (`href`, `type`, `size`, `mtime`), plus
/// `name` and `path`.
fn entry_dict<'py>(py: Python<'py>, e: &Entry) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let dir = e.is_dir();
    let rel = e.path.as_str();
    let href = if dir && !rel.is_empty() {
        format!("{rel}/")
    } else {
        rel.to_string()
    };
    d.set_item("href", href)?;
    d.set_item("type", if dir { "directory" } else { "file" })?;
    d.set_item("size", e.size)?;
    d.set_item("mtime", e.mtime.map(httpdate::fmt_http_date))?;
    d.set_item("name", &e.name)?;
    d.set_item("path", e.path.to_string())?;
    Ok(d)
}

/// An entry as fsspec's `info` gives it: `name` (the path in the storage), `size` (0 for a
/// directory), `type`, `mtime` (seconds since the epoch, or None), and what the server
/// knows besides: `etag`, `checksums` (algorithm to hex), `locality`.
fn info_dict<'py>(py: Python<'py>, e: &Entry) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", e.path.as_str())?;
    d.set_item("size", e.size.unwrap_or(0))?;
    d.set_item("type", if e.is_dir() { "directory" } else { "file" })?;
    let mtime = e
        .mtime
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    d.set_item("mtime", mtime)?;
    if let Some(tag) = &e.etag {
        d.set_item("etag", tag)?;
    }
    if !e.checksums.is_empty() {
        let sums = PyDict::new(py);
        for c in &e.checksums {
            sums.set_item(c.algorithm.to_string(), &c.value)?;
        }
        d.set_item("checksums", sums)?;
    }
    if let Some(l) = &e.locality {
        if let Ok(serde_json::Value::String(s)) = serde_json::to_value(l) {
            d.set_item("locality", s)?;
        }
    }
    Ok(d)
}

/// One read of `start..end` (see `NativeClient::read`), checked against what the server
/// said it sends.
async fn read_bytes(
    c: &Client,
    path: &str,
    start: Option<u64>,
    end: Option<u64>,
    size: Option<u64>,
) -> ctadata::Result<Vec<u8>> {
    let p = RemotePath::parse(path)?;
    let known = size.map(|n| {
        let mut e = Entry::new(p.clone(), EntryKind::File);
        e.size = Some(n);
        e
    });
    let range = match (start, end) {
        (None | Some(0), None) => None,
        (s, None) => Some(ByteRange::From(s.unwrap_or(0))),
        (s, Some(e)) if e <= s.unwrap_or(0) => return Ok(Vec::new()),
        (s, Some(e)) => Some(ByteRange::bounded(s.unwrap_or(0), e)?),
    };
    let mut opts = GetOptions::default();
    if let Some(r) = range {
        opts = opts.with_range(r);
    }
    if let Some(k) = known {
        opts = opts.with_known(k);
    }
    let dl = c.backend().get(&p, opts).await?;
    let expected = dl.range.as_ref().map(|r| r.end - r.start);
    let mut data = Vec::with_capacity(expected.unwrap_or(0).min(1 << 30) as usize);
    let mut stream = dl.stream;
    while let Some(chunk) = stream.try_next().await? {
        data.extend_from_slice(&chunk);
    }
    if let Some(n) = expected {
        if data.len() as u64 != n {
            return Err(Error::integrity(
                path,
                format!("the server announced {n} bytes and sent {}", data.len()),
            ));
        }
    }
    Ok(data)
}

/// A recursive transfer's counts as a dict.
fn summary_dict<'py>(py: Python<'py>, s: &Summary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("transferred", s.transferred)?;
    d.set_item("skipped", s.skipped)?;
    d.set_item("failed", s.failed)?;
    d.set_item("directories", s.directories)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("seconds", s.seconds)?;
    Ok(d)
}

/// `upload_file`'s answer: `{"path", "status", "total_written"}`.
fn put_dict<'py>(py: Python<'py>, p: &PutOutcome) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", p.path.as_str())?;
    d.set_item("status", "uploaded")?;
    d.set_item("total_written", p.size)?;
    Ok(d)
}

/// The certificateservice's answer, as the old client returned it (its JSON).
fn stored_obj(py: Python<'_>, s: &Stored) -> PyResult<PyObject> {
    let text = serde_json::to_string(&s.answer)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot read the service's answer: {e}")))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A storage opened on one profile: the old functions as methods.
#[pyclass(module = "ctadata._native", frozen)]
struct NativeClient {
    inner: Arc<Client>,
}

#[pymethods]
impl NativeClient {
    /// Opens `profile` (default `platform`), with an extra `config` file like `--config`;
    /// `env` sets variables for this client only, over the process's (the old client's
    /// `token=`, `downloadservice=`, `certificateservice=` arguments).
    #[new]
    #[pyo3(signature = (profile=None, config=None, env=None))]
    fn new(
        py: Python<'_>,
        profile: Option<String>,
        config: Option<PathBuf>,
        env: Option<HashMap<String, String>>,
    ) -> PyResult<Self> {
        let origin = match &profile {
            Some(_) => "the profile argument of ctadata.open / APIClient",
            None => "ctadata's default",
        };
        let name = profile.unwrap_or_else(|| ctadata::porting::DEFAULT_PROFILE.to_string());
        let opts = LoadOptions::default()
            .with_profile(Some(name))
            .with_profile_origin(Some(origin.to_string()))
            .with_config_file(config);
        let rt = runtime()?;
        let client = py
            .allow_threads(|| {
                // Inside the runtime: a backend may start tasks or timers as it opens.
                let _entered = rt.enter();
                let snapshot = match env {
                    None => EnvSnapshot::from_process(),
                    Some(extra) => EnvSnapshot::from_pairs(std::env::vars().chain(extra)),
                };
                config::load(&opts, &snapshot).and_then(Client::from_profile)
            })
            .map_err(|e| to_py(py, &e, false))?;
        Ok(Self {
            inner: Arc::new(client),
        })
    }

    /// The name of the profile this client uses.
    #[getter]
    fn profile(&self) -> Option<String> {
        self.inner.profile().map(|p| p.name.clone())
    }

    /// The entries of a directory (all below it with `recursive`, `n_threads` listings in
    /// flight), or a file's own entry.
    #[pyo3(signature = (path, recursive=false, n_threads=WALK_CONCURRENCY))]
    fn list_dir<'py>(
        &self,
        py: Python<'py>,
        path: String,
        recursive: bool,
        n_threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let c = self.inner.clone();
        let entries = run(py, false, async move {
            if !recursive {
                return c.list_dir(&path).await;
            }
            let root = RemotePath::parse(&path)?;
            let top = c.backend().stat(&root).await?;
            if !top.is_dir() {
                return Ok(vec![top]);
            }
            ctadata::transfer::walk(c.backend().clone(), root, n_threads.max(1))
                .try_collect()
                .await
        })?;
        let list = PyList::empty(py);
        for e in &entries {
            list.append(entry_dict(py, e)?)?;
        }
        Ok(list)
    }

    /// Saves a file to `save_to` (default: its name here); returns the byte count.
    #[pyo3(signature = (path, save_to=None, progress=None))]
    fn fetch_and_save_file<'py>(
        &self,
        py: Python<'py>,
        path: String,
        save_to: Option<PathBuf>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<u64> {
        let (c, report) = with_report(&self.inner, progress);
        run_reporting(py, false, report, async move {
            c.fetch_and_save_file(&path, save_to.as_deref()).await
        })
    }

    /// A file (its byte count) or, with `recursive`, a directory under `./<path>` (a dict
    /// of counts).
    #[pyo3(signature = (path, recursive=false, progress=None))]
    fn fetch_and_save_file_or_dir<'py>(
        &self,
        py: Python<'py>,
        path: String,
        recursive: bool,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<PyObject> {
        let (c, report) = with_report(&self.inner, progress);
        if !recursive {
            let n = run_reporting(py, false, report, async move {
                c.fetch_and_save_file(&path, None).await
            })?;
            return Ok(n.into_pyobject(py)?.into_any().unbind());
        }
        let s = run_reporting(py, false, report, async move {
            c.fetch_and_save_file_or_dir(&path, true).await
        })?;
        Ok(summary_dict(py, &s)?.into_any().unbind())
    }

    /// Uploads a file (a remote ending in `/` takes the local name).
    #[pyo3(signature = (local, remote, progress=None))]
    fn upload_file<'py>(
        &self,
        py: Python<'py>,
        local: PathBuf,
        remote: String,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (c, report) = with_report(&self.inner, progress);
        let p = run_reporting(py, false, report, async move {
            c.upload_file(&local, &remote).await
        })?;
        put_dict(py, &p)
    }

    /// Uploads the tree below `local_dir` onto `remote`; returns a dict of counts.
    #[pyo3(signature = (local_dir, remote, progress=None))]
    fn upload_dir<'py>(
        &self,
        py: Python<'py>,
        local_dir: PathBuf,
        remote: String,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (c, report) = with_report(&self.inner, progress);
        let s = run_reporting(py, false, report, async move {
            c.upload_dir(&local_dir, &remote).await
        })?;
        summary_dict(py, &s)
    }

    /// Checks a proxy certificate file and delegates it under `key` (cta, lst, ...).
    #[pyo3(signature = (file, key, user=None))]
    fn upload_personal_certificate(
        &self,
        py: Python<'_>,
        file: PathBuf,
        key: String,
        user: Option<String>,
    ) -> PyResult<PyObject> {
        let c = self.inner.clone();
        let s = run(py, true, async move {
            c.upload_personal_certificate(&file, &key, user.as_deref())
                .await
        })?;
        stored_obj(py, &s)
    }

    /// Checks a certificate file and stores it as the shared one (admins).
    fn upload_shared_certificate(&self, py: Python<'_>, file: PathBuf) -> PyResult<PyObject> {
        let c = self.inner.clone();
        let s = run(
            py,
            true,
            async move { c.upload_shared_certificate(&file).await },
        )?;
        stored_obj(py, &s)
    }

    /// fsspec `info`: the entry of a file or directory (`name` is its path in the storage).
    fn info<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.clone();
        let e = run(py, false, async move {
            let p = RemotePath::parse(&path)?;
            c.backend().stat(&p).await
        })?;
        info_dict(py, &e)
    }

    /// fsspec `ls`: the entries of a directory (or a file's own entry), as `info` gives them.
    fn ls<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyList>> {
        let c = self.inner.clone();
        let entries = run(py, false, async move { c.list_dir(&path).await })?;
        let list = PyList::empty(py);
        for e in &entries {
            list.append(info_dict(py, e)?)?;
        }
        Ok(list)
    }

    /// fsspec `find`: every entry below a directory (`n` listings in flight), or a file's
    /// own entry, as `info` gives them.
    #[pyo3(signature = (path, n=WALK_CONCURRENCY))]
    fn walk<'py>(&self, py: Python<'py>, path: String, n: usize) -> PyResult<Bound<'py, PyList>> {
        let c = self.inner.clone();
        let entries = run(py, false, async move {
            let root = RemotePath::parse(&path)?;
            let top = c.backend().stat(&root).await?;
            if !top.is_dir() {
                return Ok(vec![top]);
            }
            ctadata::transfer::walk(c.backend().clone(), root, n.max(1))
                .try_collect::<Vec<_>>()
                .await
        })?;
        let list = PyList::empty(py);
        for e in &entries {
            list.append(info_dict(py, e)?)?;
        }
        Ok(list)
    }

    /// Bytes `start..end` of a file (`end` None: to its end; both None: the whole file),
    /// one ranged read; fewer bytes than the server announced is an integrity error. `size`:
    /// the file's size when the caller knows it (an open file), which spares a backend that
    /// needs it (the downloadservice) a lookup per read.
    #[pyo3(signature = (path, start=None, end=None, size=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        path: String,
        start: Option<u64>,
        end: Option<u64>,
        size: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.inner.clone();
        let data = run(py, false, async move {
            read_bytes(&c, &path, start, end, size).await
        })?;
        Ok(PyBytes::new(py, &data))
    }

    /// Deletes a file, or a directory (its contents too with `recursive`).
    #[pyo3(signature = (path, recursive=false))]
    fn delete(&self, py: Python<'_>, path: String, recursive: bool) -> PyResult<()> {
        let c = self.inner.clone();
        run(py, false, async move {
            let p = RemotePath::parse(&path)?;
            c.backend().delete(&p, recursive).await
        })
    }

    /// Creates a directory (its missing parents too with `parents`).
    #[pyo3(signature = (path, parents=true))]
    fn mkdir(&self, py: Python<'_>, path: String, parents: bool) -> PyResult<()> {
        let c = self.inner.clone();
        run(py, false, async move {
            let p = RemotePath::parse(&path)?;
            c.backend().mkdir(&p, parents).await
        })
    }

    /// Renames on the server (one request, no data through this machine).
    #[pyo3(signature = (source, target, overwrite=true))]
    fn rename(
        &self,
        py: Python<'_>,
        source: String,
        target: String,
        overwrite: bool,
    ) -> PyResult<()> {
        let c = self.inner.clone();
        run(py, false, async move {
            let from = RemotePath::parse(&source)?;
            let to = RemotePath::parse(&target)?;
            c.backend().rename(&from, &to, overwrite).await
        })
    }

    /// What this profile's backend can do: `backend`, `write`, `rename`, `ranged_reads`,
    /// `checksums`, `jobs`.
    fn capabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let caps = self.inner.backend().capabilities();
        let d = PyDict::new(py);
        d.set_item("backend", caps.backend)?;
        d.set_item("write", caps.write)?;
        d.set_item("mkdir", caps.mkdir)?;
        d.set_item("delete", caps.delete)?;
        d.set_item("rename", caps.rename)?;
        d.set_item("ranged_reads", caps.ranged_reads)?;
        let sums: Vec<String> = caps.checksums.iter().map(|a| a.to_string()).collect();
        d.set_item("checksums", sums)?;
        d.set_item("jobs", caps.default_jobs)?;
        d.set_item("streams", caps.default_streams)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        match self.inner.profile() {
            Some(p) => format!("<ctadata client on profile '{}'>", p.name),
            None => "<ctadata client>".to_string(),
        }
    }
}

/// Runs the `cta-data` command line on `argv` (argv[0] the program name) with the GIL
/// released; returns its exit code.
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<String>) -> u8 {
    let args: Vec<OsString> = argv.into_iter().map(OsString::from).collect();
    py.allow_threads(move || cta_data::main_with_args(args))
}

/// The version of the engine (the Rust workspace's).
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
