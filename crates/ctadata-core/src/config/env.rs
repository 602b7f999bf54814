//! The process environment: [`EnvSnapshot`], the user id, and the layer `CTADATA_*` and the
//! legacy variables (`CTADS_URL`, `CTACS_URL`) make.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use figment::value::Value;

use super::layers::Layer;

/// The process environment, captured once so layering is testable without touching it.
///
/// It travels with the profile resolved from it ([`super::ResolvedProfile::env`]), so a
/// backend opened later sees the same variables the configuration was loaded with. Cloning
/// is cheap; `Debug` shows the variable names only, never their values (tokens live there).
#[derive(Clone, Default)]
pub struct EnvSnapshot {
    vars: Arc<HashMap<String, String>>,
}

impl std::fmt::Debug for EnvSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("EnvSnapshot").field("vars", &names).finish()
    }
}

impl EnvSnapshot {
    /// The current process environment.
    pub fn from_process() -> Self {
        Self {
            vars: Arc::new(
                std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                    .collect(),
            ),
        }
    }

    /// A given set of variables (tests, and callers that keep their own environment).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: Arc::new(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
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

/// The real user id of the process, for the per-user file names of the grid and WLCG
/// conventions (`/tmp/x509up_u<uid>`, `/tmp/bt_u<uid>`).
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
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

/// The environment layer: the legacy variables first, then `CTADATA_DEFAULT_PROFILE` and
/// `CTADATA_PROFILES__<NAME>__<KEY>[__<SUBKEY>]`, each labelled with its variable.
pub(super) fn env_layer(env: &EnvSnapshot, known: &[String]) -> Layer {
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
