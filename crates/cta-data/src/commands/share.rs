//! `share`: a link that works without other credentials (a dCache macaroon), and share
//! links given back as the remote path of other verbs.
//!
//! Defaults (no `--allow`): a file's link allows `DOWNLOAD` (and `READ_METADATA`, which
//! dCache implies anyway); a directory's link `DOWNLOAD` and `LIST` too, so that the
//! receiver can list it and fetch it with `get -r`. The link goes to stdout and nowhere
//! else; stderr says what it allows and until when, never the link.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ctadata::config::{link_arg, LinkArg};
use ctadata::credentials::human_duration;
use ctadata::share::{
    parse_activities, parse_cidr, parse_validity, ShareRequest, DIR_DEFAULT, FILE_DEFAULT,
};
use ctadata::{unsupported, Error, RemotePath, ResolvedProfile, Result, StorageBackend};

use crate::cli::{Command, Global};

/// The options of `share`, checked before any request.
pub(super) struct Request {
    validity: Duration,
    allow: Option<Vec<String>>,
    ip: Vec<(std::net::IpAddr, u8)>,
}

/// Reads `--for`, `--allow` and `--ip` (usage errors name the allowed values).
pub(super) fn request(validity: &str, allow: Option<&str>, ip: &[String]) -> Result<Request> {
    Ok(Request {
        validity: parse_validity(validity)?,
        allow: allow.map(parse_activities).transpose()?,
        ip: ip.iter().map(|s| parse_cidr(s)).collect::<Result<_>>()?,
    })
}

/// The share link given as the one remote path of a verb that takes one (`get`, `list`,
/// `stat`, `cat`, `put`, `mkdir`, `rm`, `share`), if it is one.
pub(super) fn link_in(cmd: &Command) -> Option<LinkArg> {
    let arg = match cmd {
        Command::List { path, .. }
        | Command::Stat { path, .. }
        | Command::Cat { path }
        | Command::Mkdir { path, .. }
        | Command::Rm { path, .. }
        | Command::Share { path, .. } => path,
        Command::Get { remote, .. } | Command::Put { remote, .. } => remote,
        _ => return None,
    };
    link_arg(arg)
}

/// An error of a command run with a share link: a refusal (403) says that the link does
/// not allow it, rather than pointing at the user's own account.
pub(super) fn refused_by_link(e: Error) -> Error {
    match e {
        Error::PermissionDenied { path, message } => Error::PermissionDenied {
            path,
            message: format!(
                "{message}; the share link does not allow this here (ask whoever shared it for a link that does, e.g. made with 'cta-data share PATH --allow download,list,upload')"
            ),
        },
        other => other,
    }
}

/// `cta-data share PATH [--for D] [--allow A,B] [--ip CIDR]...`.
pub(super) async fn share(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    path: &RemotePath,
    opts: Request,
) -> Result<()> {
    let sharing = backend
        .share_links()
        .ok_or_else(|| unsupported("share", backend.capabilities().backend))?;
    let activities = match opts.allow {
        Some(a) => a,
        None => {
            let defaults: &[&str] = if backend.stat(path).await?.is_dir() {
                &DIR_DEFAULT
            } else {
                &FILE_DEFAULT
            };
            defaults.iter().map(|s| s.to_string()).collect()
        }
    };
    let req = ShareRequest::new(opts.validity, activities.clone()).with_ip(opts.ip.clone());
    let link = sharing.share(path, &req).await?;
    let expires = link.expires.map(ctadata::entry::format_rfc3339);
    if g.json {
        return super::emit_json(&serde_json::json!({
            "command": "share",
            "profile": r.name,
            "path": path.to_string(),
            "link": link.link.expose(),
            "expires": expires,
            "caveats": link.caveats,
        }));
    }
    super::write_stdout(format!("{}\n", link.link.expose()).as_bytes())?;
    if !g.quiet {
        let allows = activities
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(", ");
        let from = if opts.ip.is_empty() {
            String::new()
        } else {
            let nets: Vec<String> = opts.ip.iter().map(|(a, p)| format!("{a}/{p}")).collect();
            format!(", only from {}", nets.join(" or "))
        };
        let until = expires
            .as_deref()
            .map(|e| format!(" until {e}"))
            .unwrap_or_default();
        eprintln!(
            "share link for {path}: allows {allows}{from}{until}; anyone who has it can use it: send it only to whom it is meant for"
        );
        if let Some(e) = link.expires {
            let asked = SystemTime::now() + opts.validity;
            if let Ok(short) = asked.duration_since(e) {
                if short > Duration::from_secs(60) {
                    eprintln!(
                        "note: the door shortened the link's lifetime to {} (its maximum)",
                        human_duration(e.duration_since(SystemTime::now()).unwrap_or_default())
                    );
                }
            }
        }
    }
    Ok(())
}
