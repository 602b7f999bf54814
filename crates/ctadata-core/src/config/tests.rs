//! Tests of the layering: built-in < files < environment < caller keys < flags, with the
//! origin of every value and errors that name the place and the key.

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

#[test]
fn a_map_of_string_keys_makes_a_dcache_profile() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[("XDG_CONFIG_HOME", &dir.path().display().to_string())]);
    let r = load_from_map(
        Some("mine"),
        [
            ("backend", "dcache"),
            ("url", "https://door.example:2880"),
            ("read_timeout", "30"),
            ("oidc.issuer", "https://idp.example/realms/x/"),
            ("oidc.client_id", "my-client"),
        ],
        &e,
    )
    .unwrap();
    assert_eq!(r.name, "mine");
    assert_eq!(r.name_origin, GIVEN_BY_CALLER);
    assert_eq!(r.backend(), BackendKind::Dcache);
    assert_eq!(r.profile.url.as_deref(), Some("https://door.example:2880"));
    assert_eq!(r.profile.read_timeout, Some(30));
    let oidc = r.profile.oidc.as_ref().unwrap();
    assert_eq!(oidc.client_id.as_deref(), Some("my-client"));
    assert_eq!(r.origins["url"], GIVEN_BY_CALLER);
    assert_eq!(r.origins["oidc.client_id"], GIVEN_BY_CALLER);
    assert!(
        r.values()
            .iter()
            .any(|(k, _, o)| k == "backend" && o == "given by the caller"),
        "{:?}",
        r.values()
    );

    // Over a known profile, only the given keys change; the rest keeps its origin.
    let r = load_from_map(Some("cta"), [("url", "https://other:1")], &e).unwrap();
    assert_eq!(r.profile.url.as_deref(), Some("https://other:1"));
    assert_eq!(r.origins["url"], GIVEN_BY_CALLER);
    assert_eq!(r.origins["backend"], "built-in");
    assert_eq!(
        r.profile.oidc.as_ref().unwrap().client_id.as_deref(),
        Some("dcache-cta-cscs-ch-users")
    );

    // The caller's keys beat the environment, the flags beat the caller's keys.
    let e2 = env(&[
        ("XDG_CONFIG_HOME", &dir.path().display().to_string()),
        ("CTADATA_PROFILES__CTA__URL", "https://env:3"),
    ]);
    let keys = BTreeMap::from([("url".to_string(), "https://caller:4".to_string())]);
    let r = load_with_keys(&opts_with(dir.path()), &keys, &e2).unwrap();
    assert_eq!(r.profile.url.as_deref(), Some("https://caller:4"));
    let mut o = opts_with(dir.path());
    o.url = Some("https://flag:5".into());
    let r = load_with_keys(&o, &keys, &e2).unwrap();
    assert_eq!(r.profile.url.as_deref(), Some("https://flag:5"));
    assert_eq!(r.origins["url"], "flag --url");
}

#[test]
fn bad_string_keys_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[("XDG_CONFIG_HOME", &dir.path().display().to_string())]);
    let err = load_from_map(
        Some("mine"),
        [("backend", "dcache"), ("urll", "https://x")],
        &e,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("given by the caller"), "{msg}");
    assert!(msg.contains("profiles.mine.urll"), "{msg}");
    assert!(msg.contains("unknown key 'urll'"), "{msg}");
    assert!(msg.contains("url"), "{msg}");
    assert_eq!(err.exit_code(), crate::error::exit_code::CONFIG);

    let msg = load_from_map(Some("cta"), [("jobs", "many")], &e)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("profiles.cta.jobs") && msg.contains("whole number"),
        "{msg}"
    );

    let msg = load_from_map(Some("cta"), [("backend", "ftp")], &e)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ftp") && msg.contains("dcache"), "{msg}");

    let msg = load_from_map(Some("cta"), [("oidc.issuerr", "https://x")], &e)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unknown key 'issuerr'"), "{msg}");

    // A new profile needs what any profile needs.
    let msg = load_from_map(Some("mine"), [("url", "https://x")], &e)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no 'backend'"), "{msg}");

    // Without keys, an unknown name is still refused.
    let msg = load_from_map(Some("mine"), Vec::<(String, String)>::new(), &e)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unknown profile 'mine'"), "{msg}");
}

#[test]
fn the_resolved_profile_keeps_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[("CTADATA_TOKEN", "secret-token"), ("X509_CERT_DIR", "/ca")]);
    let r = load(&opts_with(dir.path()), &e).unwrap();
    assert_eq!(r.env().get("X509_CERT_DIR"), Some("/ca"));
    assert_eq!(r.env().get("CTADATA_TOKEN"), Some("secret-token"));
    // Debug output names variables but never shows their values.
    let dbg = format!("{r:?}");
    assert!(dbg.contains("CTADATA_TOKEN"), "{dbg}");
    assert!(!dbg.contains("secret-token"), "{dbg}");
}

#[test]
fn without_a_named_profile_the_old_clients_choice_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts_with(dir.path());
    let pick = |o: &LoadOptions, vars: &[(&str, &str)]| {
        let r = load(o, &env(vars)).unwrap();
        (r.name, r.name_origin)
    };
    // No hub variable: cta, as the old cta-data-direct.
    let (n, why) = pick(&o, &[]);
    assert_eq!(n, "cta");
    assert!(
        why.contains("neither JUPYTERHUB_API_TOKEN nor CTADS_URL"),
        "{why}"
    );
    // On a hub: the downloadservice, as the old cta-data.
    let (n, why) = pick(&o, &[("JUPYTERHUB_API_TOKEN", "t")]);
    assert_eq!(n, "platform");
    assert_eq!(
        why,
        "the environment: JUPYTERHUB_API_TOKEN is set (the old cta-data used the downloadservice)"
    );
    let (n, why) = pick(&o, &[("CTADS_URL", "http://h/ds/")]);
    assert_eq!(
        (n.as_str(), why.contains("CTADS_URL is set")),
        ("platform", true)
    );
    let (_, why) = pick(
        &o,
        &[("CTADS_URL", "http://h/ds/"), ("JUPYTERHUB_API_TOKEN", "t")],
    );
    assert!(
        why.contains("JUPYTERHUB_API_TOKEN and CTADS_URL are set"),
        "{why}"
    );
    // An empty variable counts as unset.
    assert_eq!(pick(&o, &[("JUPYTERHUB_API_TOKEN", "")]).0, "cta");
    // Invoked as cta-data-direct: cta whatever the hub says.
    let direct = opts_with(dir.path()).with_direct(true);
    let (n, why) = pick(&direct, &[("JUPYTERHUB_API_TOKEN", "t")]);
    assert_eq!(n, "cta");
    assert!(why.contains("cta-data-direct"), "{why}");
    // Anything that names a profile wins over the guess.
    let (n, why) = pick(
        &o,
        &[
            ("JUPYTERHUB_API_TOKEN", "t"),
            ("CTADATA_PROFILE", "cta-dev"),
        ],
    );
    assert_eq!(
        (n.as_str(), why.as_str()),
        ("cta-dev", "variable CTADATA_PROFILE")
    );
    let (n, why) = pick(
        &o,
        &[
            ("JUPYTERHUB_API_TOKEN", "t"),
            ("CTADATA_DEFAULT_PROFILE", "grid"),
        ],
    );
    assert_eq!(n, "grid");
    assert_eq!(why, "default_profile (variable CTADATA_DEFAULT_PROFILE)");
    std::fs::write(dir.path().join("user.toml"), "default_profile = \"cta\"\n").unwrap();
    let f = opts_with(dir.path()).with_config_file(Some(dir.path().join("user.toml")));
    let (n, why) = pick(&f, &[("JUPYTERHUB_API_TOKEN", "t")]);
    assert_eq!(n, "cta");
    assert!(why.starts_with("default_profile (file "), "{why}");
    let flag = opts_with(dir.path()).with_profile(Some("local".into()));
    assert_eq!(
        pick(&flag, &[("JUPYTERHUB_API_TOKEN", "t")]),
        ("local".to_string(), "flag --profile".to_string())
    );
}

#[test]
fn urls_of_the_door_are_paths_and_other_urls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("user.toml"),
        "[profiles.nginx]\nbackend = \"dcache\"\nurl = \"http://127.0.0.1:8080/dav/\"\n",
    )
    .unwrap();
    let o = |p: &str| {
        opts_with(dir.path())
            .with_config_file(Some(dir.path().join("user.toml")))
            .with_profile(Some(p.into()))
    };
    let nginx = load(&o("nginx"), &env(&[])).unwrap();
    let arg = |r: &ResolvedProfile, s: &str| r.remote_arg(s).map(|c| c.into_owned());
    assert_eq!(arg(&nginx, "lst/x").unwrap(), "lst/x");
    assert_eq!(
        arg(&nginx, "http://127.0.0.1:8080/dav/lst/run%201.h5").unwrap(),
        "/lst/run 1.h5"
    );
    assert_eq!(
        arg(&nginx, "dav://127.0.0.1:8080/dav/lst/").unwrap(),
        "/lst/"
    );
    assert_eq!(arg(&nginx, "DAV://127.0.0.1:8080/dav").unwrap(), "/");
    // Not below the base path, another port, a query, another scheme.
    let e = arg(&nginx, "http://127.0.0.1:8080/other/x").unwrap_err();
    assert!(e.to_string().contains("base path /dav/"), "{e}");
    let e = arg(&nginx, "http://127.0.0.1:9090/dav/x").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("is on 127.0.0.1:9090"), "{e}");
    assert!(
        e.hint().unwrap().contains("--url http://127.0.0.1:9090"),
        "{e:?}"
    );
    let e = arg(&nginx, "http://127.0.0.1:8080/dav/x?authz=SECRET").unwrap_err();
    assert!(!format!("{e} {:?}", e.hint()).contains("SECRET"));
    let e = arg(&nginx, "root://127.0.0.1:8080/dav/x").unwrap_err();
    assert!(e.to_string().contains("root://"), "{e}");

    // The cta door's URL on another profile names cta (and grid, which shares it).
    let e = arg(&nginx, "davs://dcache.cta.cscs.ch:2880/lst/DL1/").unwrap_err();
    assert!(e.to_string().contains("dcache.cta.cscs.ch:2880"), "{e}");
    let h = e.hint().unwrap().to_string();
    assert!(
        h.contains("'cta'") && h.contains("'grid'") && h.contains("--profile cta"),
        "{h}"
    );
    let cta = load(&o("cta"), &env(&[])).unwrap();
    assert_eq!(
        arg(&cta, "https://dcache.cta.cscs.ch:2880/lst/DL1/").unwrap(),
        "/lst/DL1/"
    );
    // The downloadservice takes no URLs, but says which profile has one.
    let platform = load(&o("platform"), &env(&[])).unwrap();
    let e = arg(&platform, "https://dcache.cta.cscs.ch:2880/lst/a").unwrap_err();
    assert!(
        e.to_string()
            .contains("takes paths on the storage, not URLs"),
        "{e}"
    );
    assert!(
        e.hint()
            .unwrap()
            .contains("--profile cta, or give the path /lst/a"),
        "{e:?}"
    );
}

#[test]
fn streams_and_the_stream_cutoff_take_numbers_and_sizes() {
    let e = env(&[]);
    let r = load_from_map(
        Some("cta"),
        [("streams", "8"), ("stream_cutoff", "128M")],
        &e,
    )
    .unwrap();
    assert_eq!(r.profile.streams, Some(8));
    assert_eq!(r.profile.stream_cutoff, Some(128 << 20));
    let r = load_from_map(Some("cta"), [("stream_cutoff", "1048576")], &e).unwrap();
    assert_eq!(r.profile.stream_cutoff, Some(1 << 20));
    let msg = load_from_map(Some("cta"), [("stream_cutoff", "64 lots")], &e)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("profiles.cta.stream_cutoff") && msg.contains("64M"),
        "{msg}"
    );
    assert_eq!(super::parse_size("2G"), Some(2 << 30));
    assert_eq!(super::parse_size("512KiB"), Some(512 << 10));
    assert_eq!(super::parse_size("3 MB"), Some(3 << 20));
    assert_eq!(super::parse_size("M"), None);
    assert_eq!(super::parse_size("99999999999T"), None);
}
