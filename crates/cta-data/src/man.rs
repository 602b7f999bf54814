//! Man pages: `cta-data(1)` with EXIT STATUS, ENVIRONMENT and FILES, and one page per
//! subcommand (`cta-data-list(1)`, `cta-data-config-show(1)`...), which the main page's
//! SUBCOMMANDS section refers to.

use std::path::{Path, PathBuf};

use ctadata::{Error, Result};

/// The exit statuses, as README's table gives them.
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    ("1", "An error that fits no other case; report it with the output of -vv."),
    ("2", "Usage: bad arguments, a bad path, a directory without -r, a command that does not take --json."),
    ("3", "Configuration: a malformed file, an unknown key or profile, a missing url."),
    ("4", "Authentication: no credential, an expired one, or one the server refused; the hint names the command that fixes it."),
    ("5", "Permission denied on that path."),
    ("6", "Not found (a remote path, or a local source or target directory)."),
    ("7", "Conflict: the target exists (use --force), or a file or directory is in the way."),
    ("8", "Integrity: the size or checksum did not match; the data was discarded."),
    ("9", "Transport: a network or TLS failure."),
    ("10", "Protocol: the server answered something unexpected."),
    ("11", "Unsupported by this profile's backend, or a name this server cannot address (a '?' where it cuts request paths there): nothing was sent for it."),
    ("12", "Local I/O error (disk full, permissions)."),
    ("13", "Some files of a recursive transfer failed; each is listed with its reason."),
    ("130", "Interrupted (Ctrl-C): finished files are complete, unfinished ones are kept as .part files and the same command resumes them."),
];

/// The environment variables the tool reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("CTADATA_PROFILE", "The profile to use when --profile and -d are not given."),
    ("CTADATA_DEFAULT_PROFILE", "The default profile (as default_profile in the config file)."),
    ("CTADATA_PROFILES__NAME__KEY", "Any profile key, e.g. CTADATA_PROFILES__CTA__URL; nested keys are split on __, and CTA_DEV names the profile cta-dev."),
    ("CTADS_URL, CTACS_URL", "The old client's variables: the platform profile's downloadservice and certificateservice URLs."),
    ("JUPYTERHUB_API_TOKEN", "The hub token of the platform profile (inside the platform's JupyterHub)."),
    ("CTADATA_TOKEN, BEARER_TOKEN, BEARER_TOKEN_FILE", "Bearer tokens for the dcache profiles (WLCG Bearer Token Discovery), before /tmp/bt_uUID and the login session."),
    ("X509_USER_PROXY, X509_USER_CERT, X509_USER_KEY", "The grid credential of the grid profile (default /tmp/x509up_uUID)."),
    ("X509_CERT_DIR", "The directory of trusted grid CA certificates."),
    ("XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR", "Where the config file, the stored sessions and the local profile's data live."),
    ("RUST_LOG", "Log filter (e.g. debug, or ctadata_webdav=trace); overrides -v and -q."),
];

/// The files the tool reads or writes.
const FILES: &[(&str, &str)] = &[
    ("/etc/cta-data/config.toml", "The system config file (read first)."),
    ("$XDG_CONFIG_HOME/cta-data/config.toml", "The user's config file (default ~/.config/cta-data/config.toml; --config replaces it); later files win."),
    ("$XDG_CONFIG_HOME/cta-data/profiles/NAME/", "A profile's client secret and login session, mode 0600 in a 0700 directory."),
    ("/tmp/bt_uUID", "A bearer token file (WLCG Bearer Token Discovery)."),
    ("/tmp/x509up_uUID", "The grid proxy made by grid-proxy-init or voms-proxy-init."),
    ("TARGET.part, TARGET.part.meta", "A download in progress and the description of its remote file; renamed onto TARGET only after size and checksum matched, resumed by the same command after an interruption."),
];

/// Escapes text for roff: backslashes, and a leading dot or quote.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn section(out: &mut Vec<u8>, title: &str, items: &[(&str, &str)]) {
    out.extend_from_slice(format!(".SH \"{title}\"\n").as_bytes());
    for (term, text) in items {
        out.extend_from_slice(format!(".TP\n\\fB{}\\fR\n{}\n", roff(term), roff(text)).as_bytes());
    }
}

/// The command tree, built (so that subcommands carry their full names).
fn command() -> clap::Command {
    let mut cmd =
        <crate::cli::Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The main page, with the sections clap does not know.
fn main_page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    section(&mut out, "EXIT STATUS", EXIT_STATUS);
    section(&mut out, "ENVIRONMENT", ENVIRONMENT);
    section(&mut out, "FILES", FILES);
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// A subcommand's page, which refers back to the main page.
fn sub_page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    out.extend_from_slice(b".SH \"SEE ALSO\"\n\\fBcta\\-data\\fR(1), for the options every command takes, EXIT STATUS, ENVIRONMENT and FILES\n");
    Ok(out)
}

/// Every page as (file name, roff), the main page first.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let root = command();
    let mut pages = vec![("cta-data.1".to_string(), main_page(root.clone()))];
    fn walk(cmd: &clap::Command, pages: &mut Vec<(String, std::io::Result<Vec<u8>>)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{}.1", sub.get_display_name().unwrap_or(sub.get_name()));
            pages.push((name, sub_page(sub.clone())));
            walk(sub, pages);
        }
    }
    walk(&root, &mut pages);
    pages
        .into_iter()
        .map(|(name, text)| {
            text.map(|t| (name, t))
                .map_err(|e| Error::internal(format!("cannot render the man pages: {e}")))
        })
        .collect()
}

/// The page of `command` (`None`: the main page; `config show` or `config-show`: a nested one).
pub fn page(command: &[String]) -> Result<Vec<u8>> {
    let wanted = if command.is_empty() {
        "cta-data.1".to_string()
    } else {
        format!("cta-data-{}.1", command.join("-"))
    };
    let all = pages()?;
    let names: Vec<String> = all
        .iter()
        .map(|(n, _)| {
            n.trim_end_matches(".1")
                .trim_start_matches("cta-data-")
                .to_string()
        })
        .filter(|n| n != "cta-data")
        .collect();
    all.into_iter()
        .find(|(n, _)| *n == wanted)
        .map(|(_, text)| text)
        .ok_or_else(|| {
            Error::usage(
                format!("there is no man page for '{}'", command.join(" ")),
                format!("pages: {}", names.join(", ")),
            )
        })
}

/// Writes every page into `dir` (created if needed); returns the files written.
pub fn write_all(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::local("create directory", dir, e))?;
    let mut written = Vec::new();
    for (name, text) in pages()? {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::local("write", &path, e))?;
        written.push(path);
    }
    Ok(written)
}
