//! A `dcache` profile set up the way a user does it: a config file naming the URL, a token in
//! the environment. Opening the backend is left to the test (`ctadata_dcache::open`), so this
//! crate does not depend on the backends whose tests use it.

use std::path::Path;

use ctadata_core::config::{EnvSnapshot, LoadOptions, ResolvedProfile};

/// A loaded profile and the environment it was loaded with.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    /// The profile `t`, resolved from the config file.
    pub profile: ResolvedProfile,
    /// `HOME` (the test directory) and the token variable.
    pub env: EnvSnapshot,
}

/// Writes `dir/config.toml` with a profile `t` (backend `dcache`, `url`, then the lines in
/// `extra`) and loads it with `HOME` at `dir` and `token_var` set to `token`.
pub fn dcache_profile(
    dir: &Path,
    url: &str,
    extra: &str,
    token_var: &str,
    token: &str,
) -> LoadedProfile {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!("[profiles.t]\nbackend = \"dcache\"\nurl = \"{url}\"\n{extra}"),
    )
    .unwrap();
    let env = EnvSnapshot::from_pairs([
        ("HOME", dir.display().to_string()),
        (token_var, token.to_string()),
    ]);
    let opts = LoadOptions::default()
        .with_config_file(Some(cfg))
        .with_profile(Some("t".into()))
        .with_system_file(Some(dir.join("none")));
    let profile = ctadata_core::config::load(&opts, &env).unwrap();
    LoadedProfile { profile, env }
}
