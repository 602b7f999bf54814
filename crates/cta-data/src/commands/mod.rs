//! What each command does: resolve the profile, open the backend, call the library, print.
//!
//! - `list`: list and stat, and how entries are shown;
//! - `transfers`: get and put, their options and summaries;
//! - `admin`: config, cat and the small storage verbs;
//! - `output`: writing to stdout (a closed pipe is not an error).

mod admin;
mod cp;
mod list;
// ---- mount (issue 19) ----
mod mount;
// ---- end of mount ----
mod output;
mod share;
mod tape;
mod transfers;

use admin::{cat, config_paths, config_profiles, config_show, rm};
use list::{list, stat, ListStyle};
pub(crate) use output::{emit_json, error_json, json_emitted, stdout_result, write_stdout};
use transfers::{get, put};

use std::sync::Arc;

use ctadata::config::{self, EnvSnapshot, LoadOptions, ResolvedProfile};
use ctadata::{Error, OpenOptions, RemotePath, Result, RetryPolicy, StorageBackend};

use crate::cli::{CertAction, Cli, Command, ConfigAction, Global, TokenAction};

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    if g.json {
        refuse_json(&cli.command)?;
    }
    match &cli.command {
        Command::Completions { shell } => write_stdout(&crate::completions::script(*shell)),
        Command::Man { command, dir } => match dir {
            Some(dir) => {
                let mut text = String::new();
                for p in crate::man::write_all(dir)? {
                    text.push_str(&format!("{}\n", p.display()));
                }
                write_stdout(text.as_bytes())
            }
            None => write_stdout(&crate::man::page(command)?),
        },
        Command::Config { action } => {
            let resolved = resolve(g)?;
            match action {
                ConfigAction::Show => config_show(g, &resolved),
                ConfigAction::Paths => config_paths(g),
                ConfigAction::Profiles => config_profiles(g, &resolved),
            }
        }
        Command::Login {
            secret_stdin,
            secret,
            no_qr,
        } => crate::auth_cmd::login(g, &resolve(g)?, *secret_stdin, secret.clone(), *no_qr).await,
        Command::Logout => {
            let r = resolve(g)?;
            crate::auth_cmd::logout(g, &r).await?;
            done_json(g, "logout", &r, None, None)
        }
        Command::PrintToken => crate::auth_cmd::print_token(g, &resolve(g)?).await,
        Command::Token {
            action: TokenAction::Status,
        } => crate::auth_cmd::status(g, &resolve(g)?).await,
        Command::ResetConfig => {
            let r = resolve(g)?;
            crate::auth_cmd::reset(g, &r)?;
            done_json(g, "reset-config", &r, None, None)
        }
        Command::Cert {
            action: CertAction::Info { file },
        } => crate::cert_info::info(g, &resolve(g)?, file.as_deref()),
        Command::Cert {
            action: CertAction::Upload { file, key, user },
        } => crate::cert_upload::upload(g, &resolve(g)?, file, key, user.as_deref()).await,
        Command::UploadPersonalCertificate { file, key, user } => {
            crate::cert_upload::upload(g, &resolve(g)?, file, key, user.as_deref()).await
        }
        Command::Cert {
            action: CertAction::UploadShared { file },
        }
        | Command::UploadSharedCertificate { file } => {
            crate::cert_upload::upload_shared(g, &resolve(g)?, file).await
        }
        // ---- mount (issue 19): the background start and umount need no backend ----
        Command::Mount(_) | Command::Umount { .. } if g.json => Err(Error::usage(
            "--json: mount and umount print no JSON document",
            "leave out --json; a mount reports readiness on stderr (\"mounted ...\") and in /proc/self/mountinfo",
        )),
        Command::Mount(m) if m.daemon => mount::daemonize(m),
        Command::Umount { mountpoint } => mount::umount(mountpoint),
        // ---- end of mount ----
        cmd => {
            let mut resolved = resolve(g)?;
            // ---- share links (issue 14, share): a link given as the remote path ----
            if let Some(link) = share::link_in(cmd) {
                resolved = resolved.with_link(&link)?;
            }
            // ---- end of share links ----
            let backend = ctadata::open(
                &resolved,
                &OpenOptions::default()
                    .with_insecure(g.insecure)
                    .with_retry(RetryPolicy::attempts(g.retries.saturating_add(1))),
            )?;
            tracing::debug!(profile = %resolved.name, backend = resolved.backend().as_str(), "opened");
            let done = run_storage(cmd, g, &resolved, backend).await;
            // ---- share links (issue 14, share): a refusal names the link's limits ----
            if resolved.given_token().is_some() {
                return done.map_err(share::refused_by_link);
            }
            // ---- end of share links ----
            done
        }
    }
}

/// Whether the program was started as `cta-data-direct` (set once by `main`).
static DIRECT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records the name the program was started under (argv[0]): as `cta-data-direct`, the old
/// client's dCache command, the default profile is `cta`.
pub(crate) fn set_program_name(argv0: Option<&std::ffi::OsStr>) {
    let direct = argv0
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == config::DIRECT_COMMAND);
    DIRECT.store(direct, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) fn resolve(g: &Global) -> Result<ResolvedProfile> {
    let opts = LoadOptions::default()
        .with_config_file(g.config.clone())
        .with_profile(if g.dev {
            Some("cta-dev".into())
        } else {
            g.profile.clone()
        })
        .with_profile_origin(g.dev.then(|| "flag -d/--dev".to_string()))
        .with_url(g.url.clone())
        .with_ca_file(g.ca_file.clone())
        .with_token_file(g.token_file.clone())
        .with_system_file(None)
        .with_direct(DIRECT.load(std::sync::atomic::Ordering::Relaxed));
    let r = config::load(&opts, &EnvSnapshot::from_process())?;
    tracing::info!(
        "profile '{}' ({} backend), chosen by {}",
        r.name,
        r.backend().as_str(),
        r.name_origin
    );
    Ok(r)
}

/// Commands whose output is data of its own (bytes, a script, a page, a conversation)
/// refuse `--json` instead of mixing it in.
fn refuse_json(cmd: &Command) -> Result<()> {
    let (name, why) = match cmd {
        Command::Cat { .. } => ("cat", "its output is the file's bytes"),
        Command::Completions { .. } => ("completions", "its output is a shell script"),
        Command::Man { .. } => ("man", "its output is a man page"),
        Command::Login { .. } => (
            "login",
            "it is a conversation with you; 'cta-data token status --json' reports the result",
        ),
        _ => return Ok(()),
    };
    Err(Error::usage(
        format!("--json does not apply to '{name}': {why}"),
        "leave out --json",
    ))
}

/// With `--json`, the document of a command that only acts (mkdir, rm, mv, logout...):
/// `{"command", "profile", "path", "to"}`.
fn done_json(
    g: &Global,
    command: &str,
    r: &ResolvedProfile,
    path: Option<&RemotePath>,
    to: Option<&RemotePath>,
) -> Result<()> {
    if !g.json {
        return Ok(());
    }
    let mut doc = serde_json::json!({"command": command, "profile": r.name});
    if let Some(p) = path {
        doc["path"] = p.to_string().into();
    }
    if let Some(t) = to {
        doc["to"] = t.to_string().into();
    }
    emit_json(&doc)
}

pub(crate) fn rp(s: &str) -> Result<RemotePath> {
    RemotePath::parse(s)
}

/// A remote path argument: a path, or a URL of the profile's door (see
/// [`ResolvedProfile::remote_arg`]).
fn remote(r: &ResolvedProfile, s: &str) -> Result<RemotePath> {
    rp(&r.remote_arg(s)?)
}

async fn run_storage(
    cmd: &Command,
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
) -> Result<()> {
    match cmd {
        Command::List {
            path,
            long,
            recursive,
            unsorted,
            utc,
        } => {
            let style = ListStyle {
                long: *long,
                recursive: *recursive,
                unsorted: *unsorted,
                utc: *utc,
            };
            list(g, backend, &remote(r, path)?, style).await
        }
        Command::Stat { path, utc } => stat(g, backend, &remote(r, path)?, *utc).await,
        Command::Get {
            remote: remote_arg,
            local,
            recursive,
            transfer,
            streams,
            stage,
        } => {
            get(
                g,
                r,
                backend,
                &remote(r, remote_arg)?,
                local.as_deref(),
                *recursive,
                transfer,
                streams,
                stage,
            )
            .await
        }
        Command::Put {
            local,
            remote,
            recursive,
            transfer,
        } => {
            let remote = r.remote_arg(remote)?;
            put(g, r, backend, local, &remote, *recursive, transfer).await
        }
        Command::Mkdir { path, parents } => {
            let p = remote(r, path)?;
            backend.mkdir(&p, *parents).await?;
            done_json(g, "mkdir", r, Some(&p), None)
        }
        Command::Rm { path, recursive } => {
            let typed = r.remote_arg(path)?;
            let p = rp(&typed)?;
            rm(backend, &p, &typed, *recursive).await?;
            done_json(g, "rm", r, Some(&p), None)
        }
        Command::Mv { from, to, force } => {
            let (from, to) = (remote(r, from)?, remote(r, to)?);
            backend.rename(&from, &to, *force).await?;
            done_json(g, "mv", r, Some(&from), Some(&to))
        }
        Command::Cat { path } => cat(backend, &remote(r, path)?).await,
        // ---- tape verbs (issue 14, tape) ----
        Command::Stage {
            action,
            paths,
            recursive,
            pin,
            wait,
            timeout,
        } => {
            let cmd = tape::StageCmd {
                action,
                paths,
                recursive: *recursive,
                pin: *pin,
                wait: *wait,
                timeout: *timeout,
            };
            tape::stage(g, r, backend, cmd).await
        }
        Command::Release { id, paths } => tape::release(g, r, backend, id, paths).await,
        Command::Archiveinfo { paths } => tape::archiveinfo(g, r, backend, paths).await,
        // ---- share verbs (issue 14, share) ----
        Command::Share {
            path,
            validity,
            allow,
            ip,
        } => {
            let req = share::request(validity, allow.as_deref(), ip)?;
            share::share(g, r, backend, &remote(r, path)?, req).await
        }
        // ---- copy verbs (issue 14, cp) ----
        Command::Cp {
            from,
            to,
            recursive,
            mode,
            force,
            jobs,
        } => {
            let args = cp::CpArgs {
                from,
                to,
                recursive: *recursive,
                mode: *mode,
                force: *force,
                jobs: *jobs,
            };
            cp::cp(g, r, backend, &args).await
        }
        // ---- end of issue 14 verbs ----
        // ---- mount (issue 19) ----
        Command::Mount(m) => mount::mount(g, backend, &remote(r, &m.remote)?, m).await,
        // ---- end of mount ----
        Command::Config { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Login { .. }
        | Command::Logout
        | Command::PrintToken
        | Command::Token { .. }
        | Command::ResetConfig
        | Command::Cert { .. }
        | Command::UploadPersonalCertificate { .. }
        | Command::UploadSharedCertificate { .. }
        // ---- mount (issue 19) ----
        | Command::Umount { .. } => {
            unreachable!("handled before")
        }
    }
}
