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
