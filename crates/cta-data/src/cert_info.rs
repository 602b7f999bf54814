//! `cert info`: what a grid certificate or proxy file holds.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ctadata::cert::{self, KeyState, PemFile, ProxyKind, ProxyPolicy};
use ctadata::config::ResolvedProfile;
use ctadata::credentials::human_duration;
use ctadata::entry::format_rfc3339;
use ctadata::Result;

use crate::auth_cmd::local_time;
use crate::cli::Global;

/// `cert info [FILE]`: subject, issuer, proxy type, validity, time left, chain length and
/// VOMS VO of FILE (default: the credential the profile would use).
pub fn info(g: &Global, r: &ResolvedProfile, file: Option<&Path>) -> Result<()> {
    let path: PathBuf = match file {
        Some(f) => f.to_path_buf(),
        None => cert::default_info_file(r)?,
    };
    let pem = cert::read_pem_file(&path)?;
    let now = SystemTime::now();
    if g.json {
        crate::commands::emit_json(&json(&pem, now))?;
    } else {
        print!("{}", human(&pem, now));
    }
    Ok(())
}

fn seconds_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn policy(kind: &ProxyKind) -> Option<String> {
    match kind {
        ProxyKind::Rfc3820(p) | ProxyKind::Draft(p) => Some(p.to_string()),
        ProxyKind::Legacy { limited } => Some(
            if *limited {
                ProxyPolicy::Limited
            } else {
                ProxyPolicy::Impersonation
            }
            .to_string(),
        ),
        ProxyKind::NotAProxy => None,
    }
}

fn key_word(k: KeyState) -> &'static str {
    match k {
        KeyState::Absent => "absent",
        KeyState::Present => "present",
        KeyState::Encrypted => "encrypted",
    }
}

fn time_left(pem: &PemFile, now: SystemTime) -> String {
    let start = pem.latest_start().not_before;
    let end = pem.earliest_end().not_after;
    if start > now {
        return format!(
            "not valid yet (valid in {})",
            human_duration(start.duration_since(now).unwrap_or_default())
        );
    }
    match end.duration_since(now) {
        Ok(left) => human_duration(left),
        Err(past) => format!("0 (expired {} ago)", human_duration(past.duration())),
    }
}

fn human(pem: &PemFile, now: SystemTime) -> String {
    let leaf = pem.leaf();
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<12} {v}\n"));
    line("file:", &pem.path.display().to_string());
    line("subject:", &leaf.subject);
    line("issuer:", &leaf.issuer);
    if leaf.proxy.is_proxy() {
        line(
            "identity:",
            pem.identity()
                .map_or("(user certificate missing from the file)", |c| {
                    c.subject.as_str()
                }),
        );
    }
    let kind = match &leaf.proxy {
        ProxyKind::NotAProxy if leaf.is_ca => "none (a CA certificate)".to_string(),
        ProxyKind::NotAProxy => "none (an end-entity certificate)".to_string(),
        k => format!("{} ({})", k.family(), policy(k).unwrap_or_default()),
    };
    line("proxy type:", &kind);
    line("not before:", &local_time(leaf.not_before));
    line("not after:", &local_time(leaf.not_after));
    let mut left = time_left(pem, now);
    let end = pem.earliest_end();
    if !std::ptr::eq(end, leaf) && end.not_after < leaf.not_after {
        left.push_str(&format!(
            " (limited by {}, valid until {})",
            end.subject,
            local_time(end.not_after)
        ));
    }
    line("time left:", &left);
    let roles: Vec<&str> = pem
        .certs
        .iter()
        .map(|c| {
            if c.proxy.is_proxy() {
                "proxy"
            } else if c.is_ca {
                "CA"
            } else {
                "end-entity"
            }
        })
        .collect();
    line(
        "chain:",
        &format!(
            "{} certificate{} ({})",
            pem.certs.len(),
            if pem.certs.len() == 1 { "" } else { "s" },
            roles.join(", ")
        ),
    );
    line("private key:", key_word(pem.key));
    for v in pem.voms() {
        let vo = match (&v.vo, &v.server) {
            (Some(vo), Some(s)) => format!("{vo} (server {s})"),
            (Some(vo), None) => vo.clone(),
            (None, _) => "(unknown)".into(),
        };
        line("VOMS VO:", &vo);
        for f in &v.fqans {
            line("VOMS FQAN:", f);
        }
    }
    out
}

fn json(pem: &PemFile, now: SystemTime) -> serde_json::Value {
    let leaf = pem.leaf();
    let end = pem.earliest_end().not_after;
    let start = pem.latest_start().not_before;
    serde_json::json!({
        "file": pem.path.display().to_string(),
        "subject": leaf.subject,
        "issuer": leaf.issuer,
        "identity": pem.identity().map(|c| c.subject.clone()),
        "proxy_type": leaf.proxy.family(),
        "proxy_policy": policy(&leaf.proxy),
        "not_before": format_rfc3339(leaf.not_before),
        "not_after": format_rfc3339(leaf.not_after),
        "seconds_left": seconds_between(now, end).max(0),
        "expired": end <= now,
        "not_yet_valid": start > now,
        "chain_length": pem.certs.len(),
        "chain": pem.certs.iter().map(|c| serde_json::json!({
            "subject": c.subject,
            "issuer": c.issuer,
            "proxy_type": c.proxy.family(),
            "not_before": format_rfc3339(c.not_before),
            "not_after": format_rfc3339(c.not_after),
        })).collect::<Vec<_>>(),
        "private_key": key_word(pem.key),
        "voms": pem.voms().iter().map(|v| serde_json::json!({
            "vo": v.vo,
            "server": v.server,
            "fqans": v.fqans,
        })).collect::<Vec<_>>(),
    })
}
