//! Writing to standard output.

use std::io::Write;

use ctadata::{Error, Result};

/// Writes generated text to stdout; a closed pipe (e.g. `| head`) is not an error.
pub(crate) fn write_stdout(buf: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(buf)
        .and_then(|()| out.flush())
        .or_else(stdout_result)
}

/// A failed write to stdout: a closed pipe (e.g. `| head`) ends the output quietly.
pub(crate) fn stdout_result(e: std::io::Error) -> Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(Error::local("write", "standard output", e))
    }
}

/// Set once a JSON document went to stdout: an error after it is not printed as a second one.
static JSON_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints `v` as the run's one JSON document (pretty, with a final newline).
pub(crate) fn emit_json(v: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(v)
        .map_err(|e| Error::internal(format!("cannot write JSON: {e}")))?;
    text.push(b'\n');
    mark_json_emitted();
    write_stdout(&text)
}

/// Notes that the run's JSON document has been (or is being) written.
pub(crate) fn mark_json_emitted() {
    JSON_DONE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// True once the run's JSON document has been written.
pub(crate) fn json_emitted() -> bool {
    JSON_DONE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The one-word kind of an error, as `--json` names it (`docs/json/error.schema.json`):
/// the engine's [`Error::kind`], with code 1 named `other` as the exit-code table has it.
pub(crate) fn error_kind(e: &Error) -> &'static str {
    match e.kind() {
        "internal" => "other",
        kind => kind,
    }
}

/// The JSON document of a failed run: `{"error": {kind, exit_code, message, hint}}`.
pub(crate) fn error_json(e: &Error) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "kind": error_kind(e),
            "exit_code": e.exit_code(),
            "message": e.to_string(),
            "hint": e.hint(),
        }
    })
}
