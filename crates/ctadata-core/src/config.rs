//! Layered configuration: built-in profiles, system file, user file, environment, flags.
//!
//! Later layers win. Every resolved value remembers where it came from, so
//! `cta-data config show` can say "built-in", "file /etc/cta-data/config.toml",
//! "variable CTADATA_PROFILES__CTA__URL" or "flag --url".

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::Format;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile as FigmentProfile, Provider, Source};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file read system-wide.
pub const SYSTEM_CONFIG: &str = "/etc/cta-data/config.toml";

/// Which way into the storage a profile uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// WebDAV to the dCache door with OIDC bearer tokens.
    Dcache,
    /// WebDAV to the dCache door with an X.509 proxy certificate.
    X509,
    /// The JupyterHub downloadservice, with a hub token.
    Downloadservice,
    /// A local directory as storage root.
    Local,
}

impl BackendKind {
    /// The name used in config files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Dcache => "dcache",
            Self::X509 => "x509",
            Self::Downloadservice => "downloadservice",
            Self::Local => "local",
        }
    }
}

/// OpenID Connect settings of a `dcache` profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The OAuth client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Scopes to ask for (space separated); empty means the provider's defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// An oidc-agent account to ask with `oidc-token`, the last token source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_account: Option<String>,
    /// Refresh the access token when fewer than this many seconds are left (default 60).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub refresh_margin: Option<u64>,
}

/// One profile: a backend and its settings. Every key is optional in a layer; the
/// resolved profile is checked by [`Profile::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Which backend: `dcache`, `x509`, `downloadservice` or `local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    /// The door or the service URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra trusted CA certificates (PEM bundle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A hashed CA directory (grid style, `<hash>.0` files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_dir: Option<PathBuf>,
    /// `local` backend: the directory used as storage root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// A file holding the bearer token (first token source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// `downloadservice` backend: the certificateservice URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificateservice_url: Option<String>,
    /// `x509` backend: the proxy certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<PathBuf>,
    /// `x509` backend: an end-entity certificate (instead of a proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// `x509` backend: the key of `cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Seconds to wait for a connection.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub connect_timeout: Option<u64>,
    /// Seconds a read may stay idle before the transfer is called broken.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub read_timeout: Option<u64>,
    /// Parallel transfers for recursive get/put.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub jobs: Option<u64>,
    /// OIDC settings (`dcache` backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSettings>,
}

/// The whole configuration after layering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The profile used when none is named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// Numbers may come as TOML integers or as strings (from environment variables).
fn de_opt_u64<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Num(n)) => Ok(Some(n)),
        Some(N::Str(s)) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Str(&s), &"a whole number")
        }),
    }
}

/// The built-in profiles, from the data center's public deployments.
pub fn builtin(env: &EnvSnapshot) -> Config {
    let oidc = |client: &str| OidcSettings {
        issuer: Some("https://keycloak.cta.cscs.ch/realms/master/".into()),
        client_id: Some(client.into()),
        ..Default::default()
    };
    let mut profiles = BTreeMap::new();
    profiles.insert(
        "cta".into(),
        Profile {
            backend: Some(BackendKind::Dcache),
            url: Some("https://dcache.cta.cscs.ch:2880".into()),
            oidc: Some(oidc("dcache-cta-cscs-ch-users")),
            ..Default::default()
        },
    );
    profiles.insert(
        "cta-dev".into(),
        Profile {
            backend: Some(BackendKind::Dcache),
            url: Some("https://dcache-dev.ctaodc.ch:2880".into()),
            oidc: Some(oidc("dcache-dev")),
            ..Default::default()
        },
    );
    profiles.insert(
        "platform".into(),
        Profile {
            backend: Some(BackendKind::Downloadservice),
            url: Some("https://platform.cta.cscs.ch/services/downloadservice/".into()),
            certificateservice_url: Some(
                "https://platform.cta.cscs.ch/services/certificateservice/".into(),
            ),
            ..Default::default()
        },
    );
    profiles.insert(
        "grid".into(),
        Profile {
            backend: Some(BackendKind::X509),
            url: Some("https://dcache.cta.cscs.ch:2880".into()),
            ..Default::default()
        },
    );
    profiles.insert(
        "local".into(),
        Profile {
            backend: Some(BackendKind::Local),
            root: Some(env.data_dir().join("local")),
            ..Default::default()
        },
    );
    Config {
        default_profile: Some("cta".into()),
        profiles,
    }
}

/// The process environment, captured once so layering is testable without touching it.
#[derive(Debug, Clone, Default)]
pub struct EnvSnapshot {
    vars: HashMap<String, String>,
}

impl EnvSnapshot {
    /// The current process environment.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// A given set of variables (tests).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value; empty values count as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn home(&self) -> PathBuf {
        self.get("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// `$XDG_CONFIG_HOME/cta-data` or `~/.config/cta-data`.
    pub fn config_dir(&self) -> PathBuf {
        self.get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.home().join(".config"))
            .join("cta-data")
    }

    /// `$XDG_DATA_HOME/cta-data` or `~/.local/share/cta-data`.
    pub fn data_dir(&self) -> PathBuf {
        self.get("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.home().join(".local/share"))
            .join("cta-data")
    }

    fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.vars.iter()
    }
}

/// What the command line asks of the configuration.
#[derive(Debug, Clone, Default)]
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
}

/// A profile after layering, with the origin of each value.
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
}

impl ResolvedProfile {
    /// The backend (validated to be present).
    pub fn backend(&self) -> BackendKind {
        self.profile.backend.unwrap_or(BackendKind::Local)
    }

    /// Every set value as (dotted key, value as TOML text, origin), in key order.
    pub fn values(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let v =
            toml::Value::try_from(&self.profile).unwrap_or(toml::Value::Table(Default::default()));
        flatten("", &v, &mut out);
        out.into_iter()
            .map(|(k, val)| {
                let origin = self
                    .origins
                    .get(&k)
                    .cloned()
                    .unwrap_or_else(|| "built-in".into());
                (k, val, origin)
            })
            .collect()
    }
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
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
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// A figment layer whose values each know their origin's label.
struct Layer {
    name: &'static str,
    source: Option<Source>,
    dict: Dict,
    labels: Arc<HashMap<String, String>>,
}

impl Layer {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            source: None,
            dict: Dict::new(),
            labels: Arc::new(HashMap::new()),
        }
    }

    /// Sets a dotted key to a string value, remembering its label.
    fn set(&mut self, dotted: &str, value: Value, label: String) {
        let parts: Vec<&str> = dotted.split('.').collect();
        insert(&mut self.dict, &parts, value);
        Arc::get_mut(&mut self.labels)
            .expect("labels are not shared while building")
            .insert(dotted.to_string(), label);
    }
}

fn insert(dict: &mut Dict, parts: &[&str], value: Value) {
    match parts {
        [] => {}
        [last] => {
            dict.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let labels = self.labels.clone();
        let mut md =
            Metadata::named(self.name).interpolater(move |_p: &FigmentProfile, keys: &[&str]| {
                let k = keys.join(".");
                labels.get(&k).cloned().unwrap_or(k)
            });
        md.source = self.source.clone();
        md
    }

    fn data(&self) -> std::result::Result<Map<FigmentProfile, Dict>, figment::Error> {
        Ok(FigmentProfile::Default.collect(self.dict.clone()))
    }
}

/// Maps an environment profile segment onto a known profile name (`CTA_DEV` -> `cta-dev`).
fn env_profile_name(seg: &str, known: &[String]) -> String {
    let lower = seg.to_ascii_lowercase();
    if known.contains(&lower) {
        return lower;
    }
    let dashed = lower.replace('_', "-");
    if known.contains(&dashed) {
        return dashed;
    }
    lower
}

fn builtin_layer(cfg: &Config) -> Result<Layer> {
    let mut layer = Layer::new("built-in");
    let v = Value::serialize(cfg)
        .map_err(|e| Error::config(format!("built-in profiles: {e}"), "report this bug"))?;
    if let Value::Dict(_, d) = v {
        layer.dict = d;
    }
    Ok(layer)
}

fn env_layer(env: &EnvSnapshot, known: &[String]) -> Layer {
    let mut layer = Layer::new("environment");
    // Legacy variables of the old client first; CTADATA_* may override them.
    if let Some(v) = env.get("CTADS_URL") {
        layer.set(
            "profiles.platform.url",
            Value::from(v.to_string()),
            "variable CTADS_URL".into(),
        );
    }
    if let Some(v) = env.get("CTACS_URL") {
        layer.set(
            "profiles.platform.certificateservice_url",
            Value::from(v.to_string()),
            "variable CTACS_URL".into(),
        );
    }
    let mut vars: Vec<_> = env.iter().collect();
    vars.sort();
    for (k, v) in vars {
        let Some(rest) = k.strip_prefix("CTADATA_") else {
            continue;
        };
        let parts: Vec<&str> = rest.split("__").collect();
        let dotted = match parts.as_slice() {
            ["DEFAULT_PROFILE"] => "default_profile".to_string(),
            ["PROFILES", name, keys @ ..] if !keys.is_empty() => {
                let mut d = vec!["profiles".to_string(), env_profile_name(name, known)];
                d.extend(keys.iter().map(|s| s.to_ascii_lowercase()));
                d.join(".")
            }
            // CTADATA_TOKEN, CTADATA_PROFILE and friends are not configuration keys.
            _ => continue,
        };
        layer.set(&dotted, Value::from(v.clone()), format!("variable {k}"));
    }
    layer
}

/// Loads every layer and resolves one profile.
pub fn load(opts: &LoadOptions, env: &EnvSnapshot) -> Result<ResolvedProfile> {
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

    // Profile names known so far decide how CTADATA_PROFILES__CTA_DEV__URL maps.
    let known: Vec<String> = {
        let partial: Config = extract(&fig)?;
        partial.profiles.keys().cloned().collect()
    };
    fig = fig.merge(env_layer(env, &known));

    // Which profile: flag > CTADATA_PROFILE > default_profile.
    let partial: Config = extract(&fig)?;
    let (name, name_origin) = if let Some(p) = &opts.profile {
        let origin = opts.profile_origin.as_deref().unwrap_or("flag --profile");
        (p.clone(), origin.to_string())
    } else if let Some(p) = env.get("CTADATA_PROFILE") {
        (p.to_string(), "variable CTADATA_PROFILE".to_string())
    } else {
        let origin = origin_of(&fig, "default_profile");
        (
            partial
                .default_profile
                .clone()
                .unwrap_or_else(|| "cta".into()),
            format!("default_profile ({origin})"),
        )
    };
    if !partial.profiles.contains_key(&name) {
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

    let mut flags = Layer::new("command line");
    let key = |k: &str| format!("profiles.{name}.{k}");
    if let Some(u) = &opts.url {
        flags.set(&key("url"), Value::from(u.clone()), "flag --url".into());
    }
    if let Some(c) = &opts.ca_file {
        flags.set(
            &key("ca_file"),
            Value::from(c.display().to_string()),
            "flag --ca-file".into(),
        );
    }
    if let Some(t) = &opts.token_file {
        flags.set(
            &key("token_file"),
            Value::from(t.display().to_string()),
            "flag --token-file".into(),
        );
    }
    fig = fig.merge(flags);

    let cfg: Config = extract(&fig)?;
    let profile = cfg.profiles.get(&name).cloned().unwrap_or_default();

    let mut origins = BTreeMap::new();
    let tmp = ResolvedProfile {
        name: name.clone(),
        name_origin: name_origin.clone(),
        profile: profile.clone(),
        origins: BTreeMap::new(),
        files: Vec::new(),
    };
    for (k, _, _) in tmp.values() {
        origins.insert(k.clone(), origin_of(&fig, &format!("profiles.{name}.{k}")));
    }
    let resolved = ResolvedProfile {
        name,
        name_origin,
        profile,
        origins,
        files,
    };
    resolved.validate()?;
    Ok(resolved)
}

/// Where a dotted key's value came from, as a human label.
fn origin_of(fig: &Figment, dotted: &str) -> String {
    let Some(md) = fig.find_metadata(dotted) else {
        return "built-in".into();
    };
    match &md.source {
        Some(Source::File(p)) => format!("file {}", p.display()),
        _ if md.name == "built-in" => "built-in".into(),
        _ => {
            let keys: Vec<&str> = dotted.split('.').collect();
            md.interpolate(&FigmentProfile::Default, &keys)
        }
    }
}

fn extract(fig: &Figment) -> Result<Config> {
    fig.extract::<Config>().map_err(figment_error)
}

/// Turns figment's errors into one message naming the file (or variable), key and problem.
fn figment_error(err: figment::Error) -> Error {
    let mut lines = Vec::new();
    for e in err {
        let key = e
            .path
            .iter()
            .filter(|s| s.as_str() != "default")
            .cloned()
            .collect::<Vec<_>>()
            .join(".");
        let place = match &e.metadata {
            Some(md) => match &md.source {
                Some(Source::File(p)) => format!("in {}", p.display()),
                _ => {
                    let keys: Vec<&str> = key.split('.').collect();
                    let label = md.interpolate(&FigmentProfile::Default, &keys);
                    if label.starts_with("variable") || label.starts_with("flag") {
                        format!("in {label}")
                    } else {
                        format!("in the {} settings", md.name)
                    }
                }
            },
            None => String::new(),
        };
        let what = describe_kind(&e.kind);
        if key.is_empty() {
            lines.push(format!("{place}: {what}"));
        } else {
            lines.push(format!("{place}: key '{key}': {what}"));
        }
    }
    Error::config(
        lines.join("; "),
        "fix or remove the setting; 'cta-data config show' prints what is in effect and where each value comes from",
    )
}

fn describe_kind(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::UnknownField(f, expected) => {
            format!(
                "unknown key '{f}' (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::InvalidType(actual, expected) => {
            format!("wrong type: found {actual}, expected {expected}")
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: found {actual}, expected {expected}")
        }
        Kind::UnknownVariant(v, expected) => {
            format!(
                "unknown value '{v}' (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::MissingField(f) => format!("missing key '{f}'"),
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    }
}

impl Profile {
    /// Checks that what the backend needs is there.
    pub fn validate_as(&self, name: &str) -> Result<()> {
        let Some(backend) = self.backend else {
            return Err(Error::config(
                format!("profile '{name}' has no 'backend'"),
                format!("set backend = \"dcache\" | \"x509\" | \"downloadservice\" | \"local\" under [profiles.{name}]"),
            ));
        };
        match backend {
            BackendKind::Local => {
                if self.root.is_none() {
                    return Err(Error::config(
                        format!("profile '{name}' (backend local) has no 'root'"),
                        format!("set root = \"/some/directory\" under [profiles.{name}]"),
                    ));
                }
            }
            _ => match &self.url {
                None => {
                    return Err(Error::config(
                        format!(
                            "profile '{name}' (backend {}) has no 'url'",
                            backend.as_str()
                        ),
                        format!("set url = \"https://...\" under [profiles.{name}], or pass --url"),
                    ))
                }
                Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                    return Err(Error::config(
                        format!("profile '{name}': url '{u}' is not an http(s) URL"),
                        "give a URL such as https://dcache.cta.cscs.ch:2880",
                    ))
                }
                Some(_) => {}
            },
        }
        Ok(())
    }
}

impl ResolvedProfile {
    /// Checks the chosen profile.
    pub fn validate(&self) -> Result<()> {
        self.profile.validate_as(&self.name)
    }
}

/// Reads a TOML config file on its own, for `config check`-style uses and tests.
pub fn parse_file(path: &Path) -> Result<Config> {
    extract(&Figment::from(figment::providers::Toml::file_exact(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.push(("HOME".into(), "/home/u".into()));
        EnvSnapshot::from_pairs(v)
    }

    fn opts_with(dir: &Path) -> LoadOptions {
        LoadOptions {
            system_file: Some(dir.join("system.toml")),
            ..Default::default()
        }
    }

    #[test]
    fn builtin_profiles_match_the_deployments() {
        let r = load(
            &LoadOptions {
                system_file: Some("/nonexistent".into()),
                ..Default::default()
            },
            &env(&[]),
        )
        .unwrap();
        assert_eq!(r.name, "cta");
        assert_eq!(r.backend(), BackendKind::Dcache);
        assert_eq!(
            r.profile.url.as_deref(),
            Some("https://dcache.cta.cscs.ch:2880")
        );
        assert_eq!(
            r.profile.oidc.as_ref().unwrap().client_id.as_deref(),
            Some("dcache-cta-cscs-ch-users")
        );
        assert_eq!(r.origins["url"], "built-in");
        let local = load(
            &LoadOptions {
                profile: Some("local".into()),
                system_file: Some("/nonexistent".into()),
                ..Default::default()
            },
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            local.profile.root,
            Some(PathBuf::from("/home/u/.local/share/cta-data/local"))
        );
    }

    #[test]
    fn each_layer_overrides_the_one_before_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().join("xdg");
        std::fs::create_dir_all(xdg.join("cta-data")).unwrap();
        std::fs::write(
            dir.path().join("system.toml"),
            "[profiles.cta]\nurl = \"https://system:1\"\nca_dir = \"/sys/ca\"\nread_timeout = 30\n",
        )
        .unwrap();
        std::fs::write(
            xdg.join("cta-data/config.toml"),
            "[profiles.cta]\nurl = \"https://user:2\"\nca_file = \"/user/ca.pem\"\n",
        )
        .unwrap();
        let xdg_s = xdg.display().to_string();
        let base = [("XDG_CONFIG_HOME", xdg_s.as_str())];

        // system < user
        let r = load(&opts_with(dir.path()), &env(&base)).unwrap();
        assert_eq!(r.profile.url.as_deref(), Some("https://user:2"));
        assert_eq!(
            r.origins["url"],
            format!("file {}", xdg.join("cta-data/config.toml").display())
        );
        assert_eq!(
            r.origins["ca_dir"],
            format!("file {}", dir.path().join("system.toml").display())
        );
        assert_eq!(r.profile.read_timeout, Some(30));
        assert_eq!(r.origins["backend"], "built-in");
        assert_eq!(r.files.len(), 2);

        // user < env
        let mut e = base.to_vec();
        e.push(("CTADATA_PROFILES__CTA__URL", "https://env:3"));
        e.push(("CTADATA_PROFILES__CTA__READ_TIMEOUT", "45"));
        let r = load(&opts_with(dir.path()), &env(&e)).unwrap();
        assert_eq!(r.profile.url.as_deref(), Some("https://env:3"));
        assert_eq!(r.origins["url"], "variable CTADATA_PROFILES__CTA__URL");
        assert_eq!(r.profile.read_timeout, Some(45));

        // env < flags
        let mut o = opts_with(dir.path());
        o.url = Some("https://flag:4".into());
        let r = load(&o, &env(&e)).unwrap();
        assert_eq!(r.profile.url.as_deref(), Some("https://flag:4"));
        assert_eq!(r.origins["url"], "flag --url");
    }

    #[test]
    fn config_flag_replaces_the_user_file_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mine.toml");
        std::fs::write(
            &f,
            "default_profile = \"site\"\n[profiles.site]\nbackend = \"local\"\nroot = \"/data\"\n",
        )
        .unwrap();
        let mut o = opts_with(dir.path());
        o.config_file = Some(f.clone());
        let r = load(&o, &env(&[])).unwrap();
        assert_eq!(r.name, "site");
        assert!(
            r.name_origin.contains(&f.display().to_string()),
            "{}",
            r.name_origin
        );
        o.config_file = Some(dir.path().join("nope.toml"));
        let e = load(&o, &env(&[])).unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
        assert_eq!(e.exit_code(), crate::error::exit_code::CONFIG);
    }

    #[test]
    fn legacy_variables_map_onto_the_platform_profile() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts_with(dir.path());
        o.profile = Some("platform".into());
        let r = load(
            &o,
            &env(&[
                ("CTADS_URL", "http://hub:5000/services/downloadservice/"),
                ("CTACS_URL", "http://hub:5000/cs/"),
            ]),
        )
        .unwrap();
        assert_eq!(
            r.profile.url.as_deref(),
            Some("http://hub:5000/services/downloadservice/")
        );
        assert_eq!(r.origins["url"], "variable CTADS_URL");
        assert_eq!(
            r.profile.certificateservice_url.as_deref(),
            Some("http://hub:5000/cs/")
        );
        // CTADATA_* beats the legacy name
        let r = load(
            &o,
            &env(&[
                ("CTADS_URL", "http://old/"),
                ("CTADATA_PROFILES__PLATFORM__URL", "http://new/"),
            ]),
        )
        .unwrap();
        assert_eq!(r.profile.url.as_deref(), Some("http://new/"));
    }

    #[test]
    fn env_profile_names_with_dashes() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts_with(dir.path());
        o.profile = Some("cta-dev".into());
        let r = load(
            &o,
            &env(&[("CTADATA_PROFILES__CTA_DEV__URL", "https://dev:1")]),
        )
        .unwrap();
        assert_eq!(r.profile.url.as_deref(), Some("https://dev:1"));
        // CTADATA_PROFILE chooses, CTADATA_TOKEN is no config key
        let r = load(
            &opts_with(dir.path()),
            &env(&[("CTADATA_PROFILE", "grid"), ("CTADATA_TOKEN", "x")]),
        )
        .unwrap();
        assert_eq!(r.name, "grid");
        assert_eq!(r.name_origin, "variable CTADATA_PROFILE");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_file_key_and_type() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[profiles.cta]\nurll = \"x\"\n").unwrap();
        let mut o = opts_with(dir.path());
        o.config_file = Some(f.clone());
        let msg = load(&o, &env(&[])).unwrap_err().to_string();
        assert!(msg.contains(&f.display().to_string()), "{msg}");
        assert!(msg.contains("profiles.cta.urll"), "{msg}");
        assert!(msg.contains("unknown key 'urll'"), "{msg}");

        std::fs::write(&f, "[profiles.cta]\nread_timeout = \"soon\"\n").unwrap();
        let msg = load(&o, &env(&[])).unwrap_err().to_string();
        assert!(msg.contains("profiles.cta.read_timeout"), "{msg}");
        assert!(msg.contains("whole number"), "{msg}");

        std::fs::write(&f, "[profiles.cta]\nurl = 5\n").unwrap();
        let msg = load(&o, &env(&[])).unwrap_err().to_string();
        assert!(
            msg.contains("profiles.cta.url") && msg.contains("string"),
            "{msg}"
        );

        std::fs::write(&f, "[profiles.cta]\nbackend = \"ftp\"\n").unwrap();
        let msg = load(&o, &env(&[])).unwrap_err().to_string();
        assert!(msg.contains("ftp") && msg.contains("dcache"), "{msg}");

        std::fs::write(&f, "[profiles.cta\nurl = ").unwrap();
        let msg = load(&o, &env(&[])).unwrap_err().to_string();
        assert!(msg.contains(&f.display().to_string()), "{msg}");

        let msg = load(
            &opts_with(dir.path()),
            &env(&[("CTADATA_PROFILES__CTA__JOBS", "many")]),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("CTADATA_PROFILES__CTA__JOBS"), "{msg}");
    }

    #[test]
    fn unknown_profile_lists_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts_with(dir.path());
        o.profile = Some("nope".into());
        let e = load(&o, &env(&[])).unwrap_err();
        let msg = format!("{e} {}", e.hint().unwrap());
        assert!(
            msg.contains("'nope'") && msg.contains("cta-dev") && msg.contains("local"),
            "{msg}"
        );
    }

    #[test]
    fn incomplete_profiles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[profiles.x]\nbackend = \"dcache\"\n").unwrap();
        let mut o = opts_with(dir.path());
        o.config_file = Some(f);
        o.profile = Some("x".into());
        let e = load(&o, &env(&[])).unwrap_err();
        assert!(e.to_string().contains("no 'url'"), "{e}");
        o.url = Some("ftp://x".into());
        assert!(load(&o, &env(&[]))
            .unwrap_err()
            .to_string()
            .contains("not an http(s) URL"));
    }
}
