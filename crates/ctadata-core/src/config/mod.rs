//! Layered configuration: built-in profiles, system file, user file, environment, caller
//! keys, flags.
//!
//! Later layers win. Every resolved value remembers where it came from, so
//! `cta-data config show` can say "built-in", "file /etc/cta-data/config.toml",
//! "variable CTADATA_PROFILES__CTA__URL", "given by the caller" or "flag --url".
//!
//! Files: `model.rs` (what a profile holds and its checks), `builtin.rs` (the built-in
//! profiles), `env.rs` ([`EnvSnapshot`] and the environment layer), `layers.rs` (the other
//! layers and the origin of each value), `errors.rs` (figment's errors in plain words),
//! `urls.rs` (URLs of the profile's door as remote paths, [`ResolvedProfile::remote_arg`]);
//! this one resolves a profile out of them ([`load`], [`load_with_keys`], [`load_from_map`])
//! and chooses it when none is named, as the old client did ([`legacy_default`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::Format;
use figment::Figment;

use crate::error::{Error, Result};

mod builtin;
mod env;
mod errors;
mod layers;
mod model;
#[cfg(test)]
mod tests;
mod urls;

pub use builtin::builtin;
pub use env::{current_uid, EnvSnapshot};
pub use layers::GIVEN_BY_CALLER;
pub use model::{parse_size, BackendKind, Config, OidcSettings, Profile};
pub use urls::{link_arg, LinkArg};

use errors::extract;
use layers::{builtin_layer, caller_layer, flags_layer, origin_of};

/// The file read system-wide.
pub const SYSTEM_CONFIG: &str = "/etc/cta-data/config.toml";

/// What the command line asks of the configuration; build it with `LoadOptions::default()`
/// and the `with_*` methods.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// `--config FILE`: replaces the user file (and must exist).
    pub config_file: Option<PathBuf>,
    /// `--profile NAME` (or `-d`).
    pub profile: Option<String>,
    /// Where `profile` came from, for messages; `None` means the `--profile` flag.
    pub profile_origin: Option<String>,
    /// `--url URL`: overrides the chosen profile's url.
    pub url: Option<String>,
    /// `--ca-file FILE`: overrides the chosen profile's ca_file.
    pub ca_file: Option<PathBuf>,
    /// `--token-file FILE`: overrides the chosen profile's token_file.
    pub token_file: Option<PathBuf>,
    /// The system-wide file; `None` means [`SYSTEM_CONFIG`].
    pub system_file: Option<PathBuf>,
    /// The program runs as the old client's `cta-data-direct`: when no profile is named
    /// (flag, `CTADATA_PROFILE`), the default is `cta`, whatever the hub variables say.
    pub direct: bool,
}

impl LoadOptions {
    /// `--config FILE`.
    pub fn with_config_file(mut self, v: Option<PathBuf>) -> Self {
        self.config_file = v;
        self
    }

    /// `--profile NAME`.
    pub fn with_profile(mut self, v: Option<String>) -> Self {
        self.profile = v;
        self
    }

    /// Where the profile name came from (for messages).
    pub fn with_profile_origin(mut self, v: Option<String>) -> Self {
        self.profile_origin = v;
        self
    }

    /// `--url URL`.
    pub fn with_url(mut self, v: Option<String>) -> Self {
        self.url = v;
        self
    }

    /// `--ca-file FILE`.
    pub fn with_ca_file(mut self, v: Option<PathBuf>) -> Self {
        self.ca_file = v;
        self
    }

    /// `--token-file FILE`.
    pub fn with_token_file(mut self, v: Option<PathBuf>) -> Self {
        self.token_file = v;
        self
    }

    /// The system-wide file instead of [`SYSTEM_CONFIG`].
    pub fn with_system_file(mut self, v: Option<PathBuf>) -> Self {
        self.system_file = v;
        self
    }

    /// Invoked as `cta-data-direct` (the old client's dCache command).
    pub fn with_direct(mut self, v: bool) -> Self {
        self.direct = v;
        self
    }
}

/// The name the old client's dCache command had; invoked under it, the default is `cta`.
pub const DIRECT_COMMAND: &str = "cta-data-direct";

/// The variables of a JupyterHub session that made the old `cta-data` use the
/// downloadservice: either one chooses `platform` when no profile is named.
pub const HUB_VARIABLES: [&str; 2] = ["JUPYTERHUB_API_TOKEN", "CTADS_URL"];

/// The profile the old client would have used when nothing names one, and why (the words
/// follow "chosen by"): `platform` when a hub variable is set, else `cta`.
pub fn legacy_default(env: &EnvSnapshot, direct: bool) -> (String, String) {
    if direct {
        return (
            "cta".into(),
            format!("the command name {DIRECT_COMMAND} (the old client's dCache command)"),
        );
    }
    let set: Vec<&str> = HUB_VARIABLES
        .iter()
        .copied()
        .filter(|v| env.get(v).is_some())
        .collect();
    if set.is_empty() {
        (
            "cta".into(),
            "the built-in default: neither JUPYTERHUB_API_TOKEN nor CTADS_URL is set (the old cta-data-direct used dCache)".into(),
        )
    } else {
        let (what, verb) = if set.len() == 1 {
            (set[0].to_string(), "is")
        } else {
            (set.join(" and "), "are")
        };
        (
            "platform".into(),
            format!(
                "the environment: {what} {verb} set (the old cta-data used the downloadservice)"
            ),
        )
    }
}

/// A profile after layering, with the origin of each value and the environment it was
/// resolved in.
#[derive(Debug, Clone)]
pub struct ResolvedProfile {
    /// The profile's name.
    pub name: String,
    /// Where the profile's name was chosen (flag, variable, default_profile).
    pub name_origin: String,
    /// The settings.
    pub profile: Profile,
    /// Dotted key (`url`, `oidc.issuer`) to where its value came from.
    pub origins: BTreeMap<String, String>,
    /// The configuration files that were read (existing ones only).
    pub files: Vec<PathBuf>,
    /// The environment the profile was resolved in; see [`ResolvedProfile::env`].
    env: EnvSnapshot,
    /// The names of every profile of the resolved configuration, sorted.
    names: Vec<String>,
    /// Every profile of the resolved configuration with a url (name, url), to say which
    /// profile a pasted URL belongs to.
    profile_urls: Vec<(String, String)>,
    /// A token given for this command alone (a share link's macaroon); see
    /// [`ResolvedProfile::with_link`].
    given: Option<crate::credentials::GivenToken>,
}

impl ResolvedProfile {
    /// The backend (validated to be present).
    pub fn backend(&self) -> BackendKind {
        self.profile.backend.unwrap_or(BackendKind::Local)
    }

    /// The environment the profile was resolved in: what opening its backend reads (token
    /// variables, `X509_CERT_DIR`, `HOME`), so a program that passed its own snapshot to
    /// [`load`] is never overruled by the process environment.
    pub fn env(&self) -> &EnvSnapshot {
        &self.env
    }

    /// The names of every profile the configuration knows (built in, files, variables), sorted.
    pub fn profile_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Every set value as (dotted key, value as TOML text, origin), in key order.
    pub fn values(&self) -> Vec<(String, String, String)> {
        self.entries()
            .map(|(k, val, origin)| (k, val.to_string(), origin))
            .collect()
    }

    /// Every set value as (dotted key, value with its type as JSON, origin), in key order:
    /// `"dcache"`, `4`, `true`, never TOML text.
    pub fn typed_values(&self) -> Vec<(String, serde_json::Value, String)> {
        self.entries()
            .map(|(k, val, origin)| {
                let typed = serde_json::to_value(&val)
                    .unwrap_or_else(|_| serde_json::Value::String(val.to_string()));
                (k, typed, origin)
            })
            .collect()
    }

    fn entries(&self) -> impl Iterator<Item = (String, toml::Value, String)> + '_ {
        flat_values(&self.profile).into_iter().map(|(k, val)| {
            let origin = self
                .origins
                .get(&k)
                .cloned()
                .unwrap_or_else(|| "built-in".into());
            (k, val, origin)
        })
    }

    /// Checks the chosen profile.
    pub fn validate(&self) -> Result<()> {
        self.profile.validate_as(&self.name)
    }
}

/// Every set key of a profile as (dotted key, value), in key order.
fn flat_values(profile: &Profile) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    let v = toml::Value::try_from(profile).unwrap_or(toml::Value::Table(Default::default()));
    flatten("", &v, &mut out);
    out
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// Loads every layer and resolves one profile.
pub fn load(opts: &LoadOptions, env: &EnvSnapshot) -> Result<ResolvedProfile> {
    load_with_keys(opts, &BTreeMap::new(), env)
}

/// Resolves profile `name` (`None`: the default one) with `keys` over it: the way a program
/// (or a Python dict) gives a profile as string keys, without a file.
///
/// Keys are a profile's keys, dotted below it: `backend`, `url`, `token_file`,
/// `oidc.client_id`, ... A name no file defines is created from the keys alone. See
/// [`load_with_keys`] for the layering.
pub fn load_from_map<I, K, V>(
    name: Option<&str>,
    keys: I,
    env: &EnvSnapshot,
) -> Result<ResolvedProfile>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let keys: BTreeMap<String, String> = keys
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let opts = LoadOptions {
        profile: name.map(str::to_string),
        profile_origin: Some(GIVEN_BY_CALLER.into()),
        ..Default::default()
    };
    load_with_keys(&opts, &keys, env)
}

/// Loads every layer and resolves one profile, with the caller's string `keys` (the
/// profile's dotted keys, such as `url` or `oidc.issuer`) over the environment and under
/// the flags. They pass the same parsing and checks as a file's keys: an unknown key or a
/// bad value is refused naming the key, and `config show` says "given by the caller".
pub fn load_with_keys(
    opts: &LoadOptions,
    keys: &BTreeMap<String, String>,
    env: &EnvSnapshot,
) -> Result<ResolvedProfile> {
    let builtin_cfg = builtin(env);
    let mut fig = Figment::new().merge(builtin_layer(&builtin_cfg)?);

    let mut files = Vec::new();
    let system = opts
        .system_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG));
    let user = match &opts.config_file {
        Some(f) => {
            if !f.is_file() {
                return Err(Error::config(
                    format!(
                        "the config file {} given with --config does not exist",
                        f.display()
                    ),
                    "check the path, or leave --config out to use the default files",
                ));
            }
            f.clone()
        }
        None => env.config_dir().join("config.toml"),
    };
    for f in [system, user] {
        if f.is_file() {
            fig = fig.merge(figment::providers::Toml::file_exact(&f));
            files.push(f);
        }
    }

    // Profile names known so far decide how CTADATA_PROFILES__CTA_DEV__URL maps; a profile
    // the caller creates from keys is known too.
    let known: Vec<String> = {
        let partial: Config = extract(&fig)?;
        let mut known: Vec<String> = partial.profiles.keys().cloned().collect();
        if let (false, Some(p)) = (keys.is_empty(), &opts.profile) {
            known.push(p.clone());
        }
        known
    };
    fig = fig.merge(env::env_layer(env, &known));

    // Which profile: flag > CTADATA_PROFILE > the command name cta-data-direct >
    // default_profile of a file or variable > the old client's choice (hub variables).
    let partial: Config = extract(&fig)?;
    let default_origin = origin_of(&fig, "default_profile");
    let (name, name_origin) = if let Some(p) = &opts.profile {
        let origin = opts.profile_origin.as_deref().unwrap_or("flag --profile");
        (p.clone(), origin.to_string())
    } else if let Some(p) = env.get("CTADATA_PROFILE") {
        (p.to_string(), "variable CTADATA_PROFILE".to_string())
    } else if opts.direct {
        legacy_default(env, true)
    } else if let (Some(p), false) = (&partial.default_profile, default_origin == "built-in") {
        (p.clone(), format!("default_profile ({default_origin})"))
    } else {
        legacy_default(env, false)
    };
    if !partial.profiles.contains_key(&name) && keys.is_empty() {
        let names: Vec<_> = partial.profiles.keys().cloned().collect();
        return Err(Error::config(
            format!("unknown profile '{name}' (chosen by {name_origin})"),
            format!(
                "use one of: {}; or add [profiles.{name}] to {}",
                names.join(", "),
                opts.config_file
                    .clone()
                    .unwrap_or_else(|| env.config_dir().join("config.toml"))
                    .display()
            ),
        ));
    }

    if !keys.is_empty() {
        fig = fig.merge(caller_layer(&name, keys));
    }
    fig = fig.merge(flags_layer(opts, &name));

    let cfg: Config = extract(&fig)?;
    let profile = cfg.profiles.get(&name).cloned().unwrap_or_default();
    let origins = flat_values(&profile)
        .into_iter()
        .map(|(k, _)| {
            let origin = origin_of(&fig, &format!("profiles.{name}.{k}"));
            (k, origin)
        })
        .collect();
    let profile_urls = cfg
        .profiles
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), p.url.clone()?)))
        .collect();
    let resolved = ResolvedProfile {
        name,
        name_origin,
        profile,
        origins,
        files,
        env: env.clone(),
        names: cfg.profiles.keys().cloned().collect(),
        profile_urls,
        given: None,
    };
    resolved.validate()?;
    Ok(resolved)
}

/// Reads a TOML config file on its own, for `config check`-style uses and tests.
pub fn parse_file(path: &Path) -> Result<Config> {
    extract(&Figment::from(figment::providers::Toml::file_exact(path)))
}
