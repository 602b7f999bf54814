//! `cta-data`: a thin command line over the `ctadata` library (the binary and the Python
//! package's console scripts both call [`main_with_args`]).

mod auth_cmd;
mod cert_info;
mod cert_upload;
mod cli;
mod commands;
mod completions;
mod man;
mod progress;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;
use ctadata::Error;

/// Runs the command line on `args` (`args[0]` is the program name: `cta-data-direct` picks
/// the `cta` profile) and returns the exit code; Ctrl-C ends it with 130, `.part` files kept.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    commands::set_program_name(args.first().map(OsString::as_os_str));
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let _ = e.print();
            return u8::try_from(e.exit_code()).unwrap_or(2);
        }
    };
    let log_file = match &cli.command {
        cli::Command::Mount(m) => m.log_file.is_some(),
        _ => false,
    };
    init_logging(&cli.global, log_file);
    if cli.global.insecure {
        eprintln!(
            "warning: --insecure: the server's TLS certificate is NOT verified; anyone on the network path can read and change this transfer"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let verbose = cli.global.verbose;
    let json = cli.global.json;
    // `mount` stops on Ctrl-C as on SIGTERM (unmount, exit 0): it watches the signals itself.
    let own_signals = matches!(cli.command, cli::Command::Mount(_));
    let result = runtime.block_on(async {
        tokio::select! {
            r = commands::run(cli) => r,
            _ = tokio::signal::ctrl_c(), if !own_signals => {
                // The bars go before the message; unfinished `.part` files stay (and stay
                // locked until the process ends), for the rerun to resume.
                progress::clear_bars();
                Err(Error::Interrupted)
            }
        }
    });
    // Leave in-flight blocking writes behind quickly on Ctrl-C.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(&e, verbose, json);
            u8::try_from(e.exit_code()).unwrap_or(1)
        }
    }
}

/// One clear line, then what to do; `-v` adds the chain of causes. With `--json`, the
/// error is also the run's JSON document on stdout, unless one was written already.
fn report(e: &Error, verbose: u8, json: bool) {
    if json && !commands::json_emitted() {
        let _ = commands::emit_json(&commands::error_json(e));
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    if verbose > 0 {
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            let _ = writeln!(err, "  caused by: {s}");
            src = s.source();
        }
    }
    if let Some(h) = e.hint() {
        let _ = writeln!(err, "  hint: {h}");
    }
}

/// Logging on stderr at the level of `-v`/`-q` (or `RUST_LOG`). `to_file`: `mount
/// --log-file`, whose stderr becomes the log file once mounted: lines get times, no colours.
fn init_logging(g: &cli::Global, to_file: bool) {
    use tracing_subscriber::EnvFilter;
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.is_empty())
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{level},hyper=warn,reqwest=warn,rustls=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| progress::LogWriter)
        .with_target(g.verbose >= 2);
    if to_file {
        let _ = builder.with_ansi(false).try_init();
    } else {
        let _ = builder
            // Colours only for a person at a terminal, never into a file or a pipe.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .without_time()
            .try_init();
    }
}
