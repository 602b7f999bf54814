//! The login commands: login (start-agent), logout (stop-agent), print-token,
//! token status, reset-config.

use std::io::{IsTerminal, Read};
use std::time::SystemTime;

use ctadata::auth::{self, LogoutOutcome, SecretInput};
use ctadata::config::{EnvSnapshot, ResolvedProfile};
use ctadata::credentials::{human_duration, Secret};
use ctadata::{Error, Result};

use crate::cli::Global;

/// A time as the user's local clock shows it.
pub fn local_time(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Local> = t.into();
    dt.format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn local_unix(secs: i64) -> String {
    local_time(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64))
}

fn secret_input(
    g: &Global,
    r: &ResolvedProfile,
    env: &EnvSnapshot,
    stdin: bool,
    arg: Option<String>,
) -> Result<SecretInput> {
    if let Some(s) = arg {
        eprintln!("warning: -s puts the client secret on the command line, where other users of this machine can read it (ps, /proc); prefer the prompt or --secret-stdin");
        return Ok(SecretInput::Given(Secret::new(s.trim())));
    }
    if stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::local("read", "standard input", e))?;
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::usage(
                "--secret-stdin read an empty secret",
                "pipe the client secret in, e.g. cta-data login --secret-stdin < secret-file",
            ));
        }
        return Ok(SecretInput::Given(Secret::new(s)));
    }
    if let Some((_, imported)) = auth::stored_secret(r, env)? {
        if let Some(from) = imported {
            if !g.quiet {
                eprintln!(
                    "imported the client secret of the old ctadata client from {}",
                    from.display()
                );
            }
        }
        return Ok(SecretInput::Stored);
    }
    if std::io::stdin().is_terminal() {
        let client = r
            .profile
            .oidc
            .as_ref()
            .and_then(|o| o.client_id.clone())
            .unwrap_or_default();
        let s = rpassword::prompt_password(format!(
            "Client secret of '{client}' (asked once, stored with mode 0600): "
        ))
        .map_err(|e| Error::local("read", "the terminal", e))?;
        if s.trim().is_empty() {
            return Err(Error::usage(
                "no client secret was given",
                format!(
                    "run 'cta-data --profile {} login' again and type the secret you were given",
                    r.name
                ),
            ));
        }
        return Ok(SecretInput::Given(Secret::new(s.trim())));
    }
    Err(Error::usage(
        format!(
            "no client secret is stored for profile '{}' and there is no terminal to ask for it",
            r.name
        ),
        format!(
            "pipe it in: cta-data --profile {} login --secret-stdin < secret-file",
            r.name
        ),
    ))
}

fn qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
    )
}

/// `login` / `start-agent`.
pub async fn login(
    g: &Global,
    r: &ResolvedProfile,
    secret_stdin: bool,
    secret: Option<String>,
    no_qr: bool,
) -> Result<()> {
    let env = r.env();
    // Before any prompt or read of stdin: a profile without an identity provider fails here.
    auth::check_can_login(r)?;
    let input = secret_input(g, r, env, secret_stdin, secret)?;
    let draw_qr = !no_qr && std::io::stdout().is_terminal();
    let session = auth::login(r, env, g.insecure, input, |p| {
        println!("To log in to profile '{}', open", r.name);
        println!("    {}", p.verification_uri);
        println!("and enter the code  {}", p.user_code);
        if let Some(c) = &p.verification_uri_complete {
            println!("or open this link, which carries the code:\n    {c}");
            if draw_qr {
                if let Some(q) = qr(c) {
                    println!("{q}");
                }
            }
        }
        println!(
            "The code is valid for {}. Waiting for approval...",
            human_duration(p.expires_in)
        );
    })
    .await?;
    if !g.quiet {
        let who = session.subject.as_deref().unwrap_or("(unknown subject)");
        eprintln!(
            "logged in to {} as {who}; access token valid till {}; refreshed automatically while the session lasts",
            session.issuer,
            local_unix(session.expires_at)
        );
    }
    Ok(())
}

/// `logout` / `stop-agent`.
pub async fn logout(g: &Global, r: &ResolvedProfile) -> Result<()> {
    let outcome = auth::logout(r, r.env(), g.insecure).await?;
    if !g.quiet {
        eprintln!(
            "{}",
            match outcome {
                LogoutOutcome::Revoked => format!("logged out of profile '{}': the session was revoked at the identity provider and deleted", r.name),
                LogoutOutcome::DeletedOnly => format!("logged out of profile '{}': the session was deleted (the provider offers no revocation)", r.name),
                LogoutOutcome::NoSession => format!("profile '{}' had no login session", r.name),
            }
        );
    }
    Ok(())
}

/// `print-token`: the token on stdout (for `bearer_token_command` and scripts), never an
/// expired one; with `--json` one object `{"token", "expires_at", "source"}`.
pub async fn print_token(g: &Global, r: &ResolvedProfile) -> Result<()> {
    let t = auth::current_token(r, r.env(), g.insecure).await?;
    if g.json {
        let v = serde_json::json!({
            "token": t.token.expose(),
            "expires_at": t.expires.map(ctadata::entry::format_rfc3339),
            "source": t.source,
        });
        crate::commands::emit_json(&v)?;
    } else {
        crate::commands::write_stdout(format!("{}\n", t.token.expose()).as_bytes())?;
    }
    if !g.quiet {
        match t.expires {
            Some(e) => eprintln!("valid till {} (from {})", local_time(e), t.source),
            None => eprintln!("validity unknown (not a JWT; from {})", t.source),
        }
    }
    Ok(())
}

/// `token status`.
pub async fn status(g: &Global, r: &ResolvedProfile) -> Result<()> {
    let report = auth::status(r, r.env(), g.insecure).await?;
    let (sources, winner) = (&report.sources, &report.winner);
    if g.json {
        let v = serde_json::json!({
            "profile": r.name,
            "sources": sources,
            "used": winner.as_ref().map(|t| serde_json::json!({
                "source": t.source,
                "subject": t.subject,
                "expires": t.expires.map(ctadata::entry::format_rfc3339),
                "scope": t.scope,
            })),
        });
        crate::commands::emit_json(&v)?;
    } else {
        println!("profile '{}': token sources, in order", r.name);
        for (i, s) in sources.iter().enumerate() {
            println!("  {}. {:<70} {}", i + 1, s.source, s.state);
        }
        match &winner {
            Some(t) => {
                println!("used:    {}", t.source);
                println!("subject: {}", t.subject.as_deref().unwrap_or("(not a JWT)"));
                println!(
                    "expires: {}",
                    t.expires
                        .map(|e| format!("{} ({})", local_time(e), t.describe_expiry()))
                        .unwrap_or_else(|| "unknown".into())
                );
                println!("scope:   {}", t.scope.as_deref().unwrap_or("(none given)"));
            }
            None => println!("no source holds a token"),
        }
    }
    // The report is out; an expired or missing token makes the exit status 4.
    auth::status_verdict(r, r.env(), g.insecure, report)
}

/// `reset-config`.
pub fn reset(g: &Global, r: &ResolvedProfile) -> Result<()> {
    let removed = auth::reset(r, r.env())?;
    if !g.quiet {
        if removed.is_empty() {
            eprintln!("profile '{}' had no stored secret or session", r.name);
        }
        for p in removed {
            eprintln!("removed {}", p.display());
        }
    }
    Ok(())
}
