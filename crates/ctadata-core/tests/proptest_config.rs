//! Property tests of the configuration loader through its public paths only
//! (`ctadata_core::config::{parse_file, load, load_with_keys, EnvSnapshot, ...}`): arbitrary
//! TOML-ish files and arbitrary `CTADATA_*` variables never panic and give a configuration
//! or a configuration error; configurations written as TOML or given as variables come back
//! as they were written.
//!
//! Each property runs 256 cases by default (`PROPTEST_CASES` changes that); failures are
//! not persisted to files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ctadata_core::config::{
    load, load_with_keys, parse_file, BackendKind, Config, EnvSnapshot, LoadOptions, OidcSettings,
    Profile,
};
use ctadata_core::Error;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;

// ----- harness -----------------------------------------------------------------------------

/// `cases` cases unless `PROPTEST_CASES` says otherwise; nothing written to the source tree.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread: its value, or why not (a panic, or no answer in time).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIME_LIMIT) {
        Ok(v) => {
            let _ = handle.join();
            Ok(v)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("did not finish within {} s", TIME_LIMIT.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let payload = handle.join().err();
            let msg = payload
                .as_ref()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }
    }
}

/// A configuration, or a configuration error: anything else fails the property.
fn config_or_config_error<T: std::fmt::Debug>(
    r: &Result<T, Error>,
    input: &str,
) -> Result<(), TestCaseError> {
    match r {
        Ok(_) | Err(Error::Config { .. }) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!(
            "not a configuration error: {e:?}\nfrom {input}"
        ))),
    }
}

/// A private directory with `config.toml` holding `text`.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

// ----- TOML, written by hand ---------------------------------------------------------------

/// A TOML string: basic (escaped) or literal (when it can be).
fn toml_string(s: &str, literal: bool) -> String {
    if literal && !s.contains('\'') && !s.chars().any(|c| c.is_control()) {
        return format!("'{s}'");
    }
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => write!(out, "\\u{:04X}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, else quoted.
fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        toml_string(s, false)
    }
}

/// How a number is written: a TOML integer, or a string (as variables give them).
#[derive(Debug, Clone)]
struct Num(u64, Option<&'static str>);

fn num() -> impl Strategy<Value = Num> {
    (
        prop_oneof![0u64..100_000, 0u64..=i64::MAX as u64],
        prop::option::of(prop::sample::select(vec!["", " ", "\t"])),
    )
        .prop_map(|(n, s)| Num(n, s))
}

impl Num {
    fn toml(&self) -> String {
        match self.1 {
            None => self.0.to_string(),
            Some(pad) => format!("\"{pad}{}{pad}\"", self.0),
        }
    }
}

/// A profile and how its numbers are written.
#[derive(Debug, Clone)]
struct GenProfile {
    p: Profile,
    connect_timeout: Option<Num>,
    read_timeout: Option<Num>,
    jobs: Option<Num>,
    refresh_margin: Option<Num>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "https://[a-z.]{1,20}(:[0-9]{1,5})?/[ -~]{0,20}",
        "[ -~]{0,30}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn opt_path() -> impl Strategy<Value = Option<PathBuf>> {
    prop::option::of(text().prop_map(PathBuf::from))
}

fn gen_profile() -> impl Strategy<Value = GenProfile> {
    (
        (
            prop::option::of(prop::sample::select(vec![
                BackendKind::Dcache,
                BackendKind::X509,
                BackendKind::Downloadservice,
                BackendKind::Local,
            ])),
            opt_text(),
            opt_path(),
            opt_path(),
            opt_path(),
            opt_path(),
            opt_text(),
        ),
        (opt_path(), opt_path(), opt_path()),
        (
            prop::option::of(num()),
            prop::option::of(num()),
            prop::option::of(num()),
        ),
        prop::option::of((
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            prop::option::of(num()),
        )),
    )
        .prop_map(
            |(
                (backend, url, ca_file, ca_dir, root, token_file, certificateservice_url),
                (proxy, cert, key),
                (connect_timeout, read_timeout, jobs),
                oidc,
            )| {
                let (oidc, refresh_margin) = match oidc {
                    None => (None, None),
                    Some((issuer, client_id, scope, agent_account, margin)) => (
                        Some(OidcSettings {
                            issuer,
                            client_id,
                            scope,
                            agent_account,
                            refresh_margin: margin.as_ref().map(|n| n.0),
                        }),
                        margin,
                    ),
                };
                GenProfile {
                    p: Profile {
                        backend,
                        url,
                        ca_file,
                        ca_dir,
                        root,
                        token_file,
                        certificateservice_url,
                        proxy,
                        cert,
                        key,
                        connect_timeout: connect_timeout.as_ref().map(|n| n.0),
                        read_timeout: read_timeout.as_ref().map(|n| n.0),
                        idle_timeout: None,
                        jobs: jobs.as_ref().map(|n| n.0),
                        streams: None,
                        stream_cutoff: None,
                        oidc,
                    },
                    connect_timeout,
                    read_timeout,
                    jobs,
                    refresh_margin,
                }
            },
        )
}

/// A profile name: anything a TOML key may be.
fn profile_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9_-]{0,10}",
        1 => prop::sample::select(vec!["cta", "cta-dev", "platform", "grid", "local", "a.b", "a b", "ε", "", "default", "global"])
            .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

#[derive(Debug, Clone)]
struct GenConfig {
    default_profile: Option<String>,
    profiles: BTreeMap<String, GenProfile>,
    literal: bool,
    /// Tables (`[profiles.x]`) or dotted keys (`profiles.x.url = ...`).
    dotted: bool,
}

fn gen_config() -> impl Strategy<Value = GenConfig> {
    (
        opt_text(),
        prop::collection::btree_map(profile_name(), gen_profile(), 0..4),
        any::<bool>(),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(default_profile, profiles, literal, dotted)| GenConfig {
            default_profile,
            profiles,
            literal,
            dotted,
        })
}

impl GenConfig {
    fn expected(&self) -> Config {
        Config {
            default_profile: self.default_profile.clone(),
            profiles: self
                .profiles
                .iter()
                .map(|(k, v)| (k.clone(), v.p.clone()))
                .collect(),
        }
    }

    /// The file's text.
    fn toml(&self) -> String {
        let lit = self.literal;
        let s = |v: &str| toml_string(v, lit);
        let path = |v: &Path| toml_string(&v.to_string_lossy(), lit);
        let mut out = String::from("# written by proptest_config\n");
        if let Some(d) = &self.default_profile {
            writeln!(out, "default_profile = {}", s(d)).unwrap();
        }
        for (name, g) in &self.profiles {
            let p = &g.p;
            let mut keys: Vec<(String, String)> = Vec::new();
            if let Some(b) = p.backend {
                keys.push(("backend".into(), s(b.as_str())));
            }
            for (k, v) in [
                ("url", &p.url),
                ("certificateservice_url", &p.certificateservice_url),
            ] {
                if let Some(v) = v {
                    keys.push((k.into(), s(v)));
                }
            }
            for (k, v) in [
                ("ca_file", &p.ca_file),
                ("ca_dir", &p.ca_dir),
                ("root", &p.root),
                ("token_file", &p.token_file),
                ("proxy", &p.proxy),
                ("cert", &p.cert),
                ("key", &p.key),
            ] {
                if let Some(v) = v {
                    keys.push((k.into(), path(v)));
                }
            }
            for (k, v) in [
                ("connect_timeout", &g.connect_timeout),
                ("read_timeout", &g.read_timeout),
                ("jobs", &g.jobs),
            ] {
                if let Some(n) = v {
                    keys.push((k.into(), n.toml()));
                }
            }
            let mut oidc_keys: Vec<(String, String)> = Vec::new();
            if let Some(o) = &p.oidc {
                for (k, v) in [
                    ("issuer", &o.issuer),
                    ("client_id", &o.client_id),
                    ("scope", &o.scope),
                    ("agent_account", &o.agent_account),
                ] {
                    if let Some(v) = v {
                        oidc_keys.push((k.into(), s(v)));
                    }
                }
                if let Some(n) = &g.refresh_margin {
                    oidc_keys.push(("refresh_margin".into(), n.toml()));
                }
            }
            let table = format!("profiles.{}", toml_key(name));
            if self.dotted {
                for (k, v) in &keys {
                    writeln!(out, "{table}.{k} = {v}").unwrap();
                }
                if p.oidc.is_some() {
                    let inline = oidc_keys
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    writeln!(out, "{table}.oidc = {{ {inline} }}").unwrap();
                }
                if keys.is_empty() && p.oidc.is_none() {
                    writeln!(out, "{table} = {{}}").unwrap();
                }
            } else {
                writeln!(out, "\n[{table}]").unwrap();
                for (k, v) in &keys {
                    writeln!(out, "{k} = {v}").unwrap();
                }
                if p.oidc.is_some() {
                    writeln!(out, "[{table}.oidc]").unwrap();
                    for (k, v) in &oidc_keys {
                        writeln!(out, "{k} = {v}").unwrap();
                    }
                }
            }
        }
        out
    }
}

/// Pieces of TOML (and not quite TOML) for arbitrary files.
const TOKENS: &[&str] = &[
    "[profiles.cta]\n",
    "[profiles.x]\n",
    "[profiles.x.oidc]\n",
    "[[profiles]]\n",
    "[profiles]\n",
    "[profiles.\"a.b\"]\n",
    "[default]\n",
    "profiles.x.url = \"https://h\"\n",
    "backend = \"dcache\"\n",
    "backend = \"nope\"\n",
    "backend = 3\n",
    "url = \"https://door:2880\"\n",
    "url = \"ftp://x\"\n",
    "root = \"/tmp\"\n",
    "jobs = 4\n",
    "jobs = \"4\"\n",
    "jobs = -1\n",
    "jobs = 1e3\n",
    "jobs = \" 7 \"\n",
    "jobs = 18446744073709551615\n",
    "connect_timeout = \"x\"\n",
    "refresh_margin = 60\n",
    "default_profile = \"x\"\n",
    "default_profile = 1\n",
    "oidc = { issuer = \"https://i\" }\n",
    "oidc = 1\n",
    "unknown = true\n",
    "a.b.c = 1\n",
    "= 1\n",
    "\"\" = 1\n",
    "x = [1, \"a\"]\n",
    "x = 1979-05-27T07:32:00Z\n",
    "'",
    "\"",
    "\"\"\"",
    "\\u0000",
    "\\",
    "=",
    "[",
    "]",
    "{",
    "}",
    "#",
    "\n",
    "\r\n",
    " ",
    "\u{0}",
    "é",
    "\u{FEFF}",
];

fn toml_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|v| v.concat())
}

/// A valid configuration's text with characters changed, added or cut.
fn toml_mutated() -> impl Strategy<Value = String> {
    (
        gen_config(),
        prop::collection::vec(
            (any::<Index>(), prop::sample::select(TOKENS), 0usize..8),
            1..5,
        ),
    )
        .prop_map(|(c, edits)| {
            let mut chars: Vec<char> = c.toml().chars().collect();
            for (at, ins, del) in edits {
                let k = at.index(chars.len() + 1);
                let end = (k + del).min(chars.len());
                chars.splice(k..end, ins.chars());
            }
            chars.into_iter().collect()
        })
}

fn any_toml() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), toml_soup(), toml_mutated()]
}

// ----- environments ------------------------------------------------------------------------

fn var_name() -> impl Strategy<Value = String> {
    let profile = prop_oneof![
        prop::sample::select(vec![
            "CTA", "CTA_DEV", "PLATFORM", "GRID", "LOCAL", "X", "", "A.B", "ε", "cta", "A B",
        ])
        .prop_map(str::to_string),
        "[A-Z_]{1,8}",
    ];
    let key = prop::sample::select(vec![
        "URL",
        "BACKEND",
        "ROOT",
        "JOBS",
        "CONNECT_TIMEOUT",
        "OIDC",
        "OIDC__ISSUER",
        "OIDC__CLIENT_ID",
        "OIDC__REFRESH_MARGIN",
        "OIDC__NOPE",
        "NOPE",
        "",
        "URL__X",
        "TOKEN_FILE",
    ]);
    prop_oneof![
        4 => (profile, key).prop_map(|(p, k)| format!("CTADATA_PROFILES__{p}__{k}")),
        1 => prop::sample::select(vec![
            "CTADATA_DEFAULT_PROFILE",
            "CTADATA_PROFILE",
            "CTADATA_PROFILES",
            "CTADATA_PROFILES__",
            "CTADATA_TOKEN",
            "CTADATA_",
            "CTADS_URL",
            "CTACS_URL",
            "HOME",
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
        ])
        .prop_map(str::to_string),
        1 => "CTADATA_[A-Z_]{0,30}",
        1 => any::<String>(),
    ]
}

fn var_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "",
            " ",
            "dcache",
            "x509",
            "local",
            "downloadservice",
            "https://door.example:2880",
            "http://127.0.0.1:1",
            "/tmp/root",
            "4",
            " 12 ",
            "-1",
            "18446744073709551616",
            "cta",
            "platform",
            "x",
            "{}",
            "[1]",
            "true",
        ])
        .prop_map(str::to_string),
    ]
}

fn env_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((var_name(), var_value()), 0..8)
}

fn snapshot(pairs: &[(String, String)], home: &Path) -> EnvSnapshot {
    let mut v = vec![("HOME".to_string(), home.display().to_string())];
    v.extend(pairs.iter().cloned());
    EnvSnapshot::from_pairs(v)
}

// ----- the properties ----------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary text, TOML-looking pieces, damaged valid files: `parse_file` gives a
    /// configuration or a configuration error, in bounded time.
    #[test]
    fn parse_file_arbitrary_text(text in any_toml()) {
        let t = text.clone();
        let r = bounded(move || {
            let (_dir, p) = config_file(&t);
            parse_file(&p)
        })
        .map_err(TestCaseError::fail)?;
        config_or_config_error(&r, &text)?;
    }

    /// Round trip: a configuration written as TOML (tables or dotted keys, basic or
    /// literal strings, numbers as integers or strings, any text in values and profile
    /// names) is read back as the same configuration.
    #[test]
    fn parse_file_round_trip(c in gen_config()) {
        let text = c.toml();
        let (_dir, p) = config_file(&text);
        let got = parse_file(&p).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(got, c.expected(), "{}", text);
    }

    /// The whole loader over arbitrary files, arbitrary `CTADATA_*` (and other) variables
    /// and arbitrary flags: a resolved profile or a configuration error, in bounded time;
    /// a resolved profile passes its own checks and is the one asked for.
    #[test]
    fn load_arbitrary(
        text in prop::option::of(any_toml()),
        pairs in env_pairs(),
        profile in prop::option::of(prop_oneof![profile_name(), Just("cta".to_string())]),
        url in prop::option::of(var_value()),
    ) {
        let input = format!("{text:?}\n{pairs:?}\n{profile:?} {url:?}");
        let r = bounded({
            let (pairs, profile) = (pairs.clone(), profile.clone());
            move || {
                let dir = tempfile::tempdir().unwrap();
                let config_file = text.map(|t| {
                    let p = dir.path().join("config.toml");
                    std::fs::write(&p, t).unwrap();
                    p
                });
                let env = snapshot(&pairs, &dir.path().join("home"));
                let opts = LoadOptions::default().with_config_file(config_file).with_profile(profile).with_url(url).with_system_file(Some(dir.path().join("no-system.toml")));
                load(&opts, &env)
            }
        })
        .map_err(TestCaseError::fail)?;
        config_or_config_error(&r, &input)?;
        if let Ok(resolved) = &r {
            prop_assert!(resolved.validate().is_ok());
            let env = EnvSnapshot::from_pairs(pairs.clone());
            let asked = profile.clone().or_else(|| env.get("CTADATA_PROFILE").map(str::to_string));
            if let Some(a) = asked {
                prop_assert_eq!(&resolved.name, &a, "{}", input);
            }
        }
    }

    /// The caller's keys (as a program or a Python dict gives them), any keys and values:
    /// a resolved profile or a configuration error, in bounded time.
    #[test]
    fn load_with_arbitrary_keys(
        keys in prop::collection::btree_map(
            prop_oneof![
                3 => prop::sample::select(vec![
                    "backend", "url", "root", "jobs", "oidc", "oidc.issuer", "oidc.refresh_margin",
                    "token_file", " url ", "url.x", "", ".", "oidc.", "nope",
                ]).prop_map(str::to_string),
                1 => any::<String>(),
            ],
            var_value(),
            0..6,
        ),
        profile in prop::option::of(profile_name()),
        pairs in env_pairs(),
    ) {
        let input = format!("{keys:?}\n{profile:?}\n{pairs:?}");
        let r = bounded(move || {
            let dir = tempfile::tempdir().unwrap();
            let env = snapshot(&pairs, &dir.path().join("home"));
            let opts = LoadOptions::default().with_profile(profile).with_system_file(Some(dir.path().join("no-system.toml")));
            load_with_keys(&opts, &keys, &env)
        })
        .map_err(TestCaseError::fail)?;
        config_or_config_error(&r, &input)?;
    }

    /// Round trip through variables: a profile defined by `CTADATA_PROFILES__<NAME>__*`
    /// (any values) and chosen by `CTADATA_PROFILE` resolves to those values, each said to
    /// come from its variable.
    #[test]
    fn env_round_trip(
        name in "[a-z][a-z0-9]{0,8}".prop_filter("not a built-in profile", |n| {
            !["cta", "grid", "local", "platform"].contains(&n.as_str())
        }),
        backend in prop::sample::select(vec![BackendKind::Dcache, BackendKind::X509, BackendKind::Downloadservice]),
        url in "[ -~]{0,30}".prop_map(|s| format!("https://{s}")),
        jobs in prop::option::of(num()),
        client_id in prop::option::of(any::<String>().prop_filter("set", |s| !s.is_empty())),
        token_file in prop::option::of(any::<String>().prop_filter("set", |s| !s.is_empty())),
    ) {
        let up = name.to_ascii_uppercase();
        let var = |k: &str| format!("CTADATA_PROFILES__{up}__{k}");
        let mut pairs = vec![
            ("CTADATA_PROFILE".to_string(), name.clone()),
            (var("BACKEND"), backend.as_str().to_string()),
            (var("URL"), url.clone()),
        ];
        if let Some(n) = &jobs {
            pairs.push((var("JOBS"), format!("{}{}{}", n.1.unwrap_or(""), n.0, n.1.unwrap_or(""))));
        }
        if let Some(c) = &client_id {
            pairs.push((var("OIDC__CLIENT_ID"), c.clone()));
        }
        if let Some(t) = &token_file {
            pairs.push((var("TOKEN_FILE"), t.clone()));
        }
        let dir = tempfile::tempdir().unwrap();
        let env = snapshot(&pairs, &dir.path().join("home"));
        let opts = LoadOptions::default().with_system_file(Some(dir.path().join("no-system.toml")));
        let r = load(&opts, &env).map_err(|e| TestCaseError::fail(format!("{e}\n{pairs:?}")))?;
        prop_assert_eq!(&r.name, &name);
        prop_assert_eq!(r.profile.backend, Some(backend));
        prop_assert_eq!(r.profile.url.as_deref(), Some(url.as_str()));
        prop_assert_eq!(r.profile.jobs, jobs.as_ref().map(|n| n.0));
        prop_assert_eq!(
            r.profile.oidc.as_ref().and_then(|o| o.client_id.clone()),
            client_id.clone()
        );
        prop_assert_eq!(r.profile.token_file.clone(), token_file.as_ref().map(PathBuf::from));
        prop_assert_eq!(&r.origins["url"], &format!("variable {}", var("URL")));
        prop_assert_eq!(&r.origins["backend"], &format!("variable {}", var("BACKEND")));
        if client_id.is_some() {
            prop_assert_eq!(
                &r.origins["oidc.client_id"],
                &format!("variable {}", var("OIDC__CLIENT_ID"))
            );
        }
    }
}
