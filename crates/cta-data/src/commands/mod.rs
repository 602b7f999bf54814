//! What each command does: resolve the profile, open the backend, call the library, print.
//!
//! - `list`: list and stat, and how entries are shown;
//! - `transfers`: get and put, their options and summaries;
//! - `admin`: config, cat and the small storage verbs;
//! - `output`: writing to stdout (a closed pipe is not an error).

mod admin;
mod list;
mod output;
mod transfers;

use admin::{cat, config_paths, config_show, rm};
use list::{list, print_stat};
pub(crate) use output::{stdout_result, write_stdout};
use transfers::{get, put};

use std::sync::Arc;

use ctadata::config::{self, EnvSnapshot, LoadOptions, ResolvedProfile};
use ctadata::{Error, OpenOptions, RemotePath, Result, RetryPolicy, StorageBackend};

use crate::cli::{CertAction, Cli, Command, ConfigAction, Global, TokenAction};

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "cta-data", &mut buf);
            write_stdout(&buf)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|e| Error::local("write", "standard output", e))?;
            write_stdout(&buf)
        }
        Command::Config { action } => {
            let resolved = resolve(g)?;
            match action {
                ConfigAction::Show => config_show(g, &resolved),
                ConfigAction::Paths => config_paths(g),
            }
        }
        Command::Login {
            secret_stdin,
            secret,
            no_qr,
        } => crate::auth_cmd::login(g, &resolve(g)?, *secret_stdin, secret.clone(), *no_qr).await,
        Command::Logout => crate::auth_cmd::logout(g, &resolve(g)?).await,
        Command::PrintToken => crate::auth_cmd::print_token(g, &resolve(g)?).await,
        Command::Token {
            action: TokenAction::Status,
        } => crate::auth_cmd::status(g, &resolve(g)?).await,
        Command::ResetConfig => crate::auth_cmd::reset(g, &resolve(g)?),
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
        cmd => {
            let resolved = resolve(g)?;
            let backend = ctadata::open(
                &resolved,
                &OpenOptions::default()
                    .with_insecure(g.insecure)
                    .with_retry(RetryPolicy::attempts(g.retries.saturating_add(1))),
            )?;
            tracing::debug!(profile = %resolved.name, backend = resolved.backend().as_str(), "opened");
            run_storage(cmd, g, &resolved, backend).await
        }
    }
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
        .with_system_file(None);
    config::load(&opts, &EnvSnapshot::from_process())
}

pub(crate) fn rp(s: &str) -> Result<RemotePath> {
    RemotePath::parse(s)
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
        } => list(g, backend, &rp(path)?, *long, *recursive).await,
        Command::Stat { path } => {
            let e = backend.stat(&rp(path)?).await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
            } else {
                print_stat(&e);
            }
            Ok(())
        }
        Command::Get {
            remote,
            local,
            recursive,
            transfer,
        } => {
            get(
                g,
                r,
                backend,
                &rp(remote)?,
                local.as_deref(),
                *recursive,
                transfer,
            )
            .await
        }
        Command::Put {
            local,
            remote,
            recursive,
            transfer,
        } => put(g, r, backend, local, remote, *recursive, transfer).await,
        Command::Mkdir { path, parents } => backend.mkdir(&rp(path)?, *parents).await,
        Command::Rm { path, recursive } => rm(backend, path, *recursive).await,
        Command::Mv { from, to, force } => backend.rename(&rp(from)?, &rp(to)?, *force).await,
        Command::Cat { path } => cat(backend, &rp(path)?).await,
        Command::Config { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Login { .. }
        | Command::Logout
        | Command::PrintToken
        | Command::Token { .. }
        | Command::ResetConfig
        | Command::Cert { .. }
        | Command::UploadPersonalCertificate { .. }
        | Command::UploadSharedCertificate { .. } => {
            unreachable!("handled before")
        }
    }
}
