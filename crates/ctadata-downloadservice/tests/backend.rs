//! The downloadservice backend against the platform double, whose storage is a real nginx
//! WebDAV server: every verb, the service's quirks, and the bad answers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ctadata_core::config::{EnvSnapshot, LoadOptions};
use ctadata_core::retry::{RetryPolicy, Retrying};
use ctadata_core::transfer::{self, TransferOptions};
use ctadata_core::{
    AuthProblem, ByteRange, Error, GetOptions, PutOptions, RemotePath, StorageBackend, Upload,
};
use ctadata_downloadservice::{open_service, DownloadService, RANGE_PIECE};
use ctadata_testsupport::{Fault, HubUser, PlatformConfig, PlatformDouble, Scopes};
use futures::TryStreamExt;

const TOKEN: &str = "alice-hub-token";

fn rp(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

fn double_with(users: Vec<HubUser>) -> PlatformDouble {
    PlatformDouble::start(PlatformConfig {
        users,
        ..Default::default()
    })
    .expect("the platform double (nginx: tests/run-all.sh installs it)")
}

fn double() -> PlatformDouble {
    double_with(vec![
        HubUser::new("Alice.Smith-42", TOKEN),
        HubUser {
            scopes: Scopes::NONE,
            ..HubUser::new("carol", "no-scope-token")
        },
    ])
}

/// The backend as the CLI opens it: the `platform` profile from `CTADS_URL`, a token variable.
fn open_with(
    d: &PlatformDouble,
    vars: &[(&str, &str)],
    token_file: Option<&Path>,
) -> DownloadService {
    open_full(d, vars, token_file, None)
}

fn open_full(
    d: &PlatformDouble,
    vars: &[(&str, &str)],
    token_file: Option<&Path>,
    ca_file: Option<&Path>,
) -> DownloadService {
    let mut pairs: Vec<(String, String)> = vec![
        ("CTADS_URL".into(), d.downloadservice_url()),
        ("CTACS_URL".into(), d.certificateservice_url()),
        ("HOME".into(), "/nonexistent-home".into()),
    ];
    pairs.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env = EnvSnapshot::from_pairs(pairs);
    let opts = LoadOptions::default()
        .with_profile(Some("platform".into()))
        .with_system_file(Some("/nonexistent/config.toml".into()))
        .with_token_file(token_file.map(Path::to_path_buf))
        .with_ca_file(ca_file.map(Path::to_path_buf));
    let profile = ctadata_core::config::load(&opts, &env).unwrap();
    open_service(&profile, &env, &Default::default()).unwrap()
}

fn open(d: &PlatformDouble) -> DownloadService {
    open_with(d, &[("JUPYTERHUB_API_TOKEN", TOKEN)], None)
}

async fn read(b: &dyn StorageBackend, p: &str, range: Option<ByteRange>) -> Result<Vec<u8>, Error> {
    let d = b
        .get(
            &rp(p),
            match range {
                Some(r) => GetOptions::default().with_range(r),
                None => GetOptions::default(),
            },
        )
        .await?;
    let chunks: Vec<bytes::Bytes> = d.stream.try_collect().await?;
    Ok(chunks.concat())
}

fn names(v: &[ctadata_core::Entry]) -> Vec<String> {
    let mut n: Vec<String> = v.iter().map(|e| e.name.clone()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_and_stat() {
    let d = double();
    d.put_file("lst/DL1/a b+c.h5", b"hello");
    d.put_file("lst/DL1/ε.txt", b"epsilon");
    d.mkdir("lst/DL1/sub");
    let b = open(&d);

    let root = b.list_all(&RemotePath::root()).await.unwrap();
    assert_eq!(
        names(&root),
        ["cta", "lst"],
        "the root's own entry is left out"
    );
    assert!(root.iter().all(|e| e.is_dir()));

    let v = b.list_all(&rp("lst/DL1")).await.unwrap();
    assert_eq!(
        names(&v),
        ["a b+c.h5", "sub", "ε.txt"],
        "the directory itself is left out"
    );
    let f = v.iter().find(|e| e.name == "a b+c.h5").unwrap();
    assert_eq!((f.size, f.path.as_str()), (Some(5), "lst/DL1/a b+c.h5"));
    assert!(f.mtime.is_some());
    assert!(v.iter().find(|e| e.name == "sub").unwrap().is_dir());

    let s = b.stat(&rp("lst/DL1/ε.txt")).await.unwrap();
    assert_eq!((s.is_file(), s.size), (true, Some(7)));
    assert!(b.stat(&rp("lst/DL1")).await.unwrap().is_dir());
    assert!(matches!(
        b.list_all(&rp("lst/DL1/a b+c.h5")).await,
        Err(Error::Conflict { .. })
    ));
    let e = b.stat(&rp("lst/nope")).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert_eq!(e.to_string(), "not found: /lst/nope");

    // The hub token went as a header with the JSON content type, never in a URL.
    let reqs = d.requests();
    assert!(
        reqs.iter().all(|r| !r.token_in_query && r.authorization),
        "{reqs:?}"
    );
    assert!(reqs
        .iter()
        .filter(|r| r.path_and_query.contains("/list"))
        .all(|r| r.content_type.as_deref() == Some("application/json")));
    assert!(
        reqs.iter()
            .any(|r| r.path_and_query.ends_with("/downloadservice/list")),
        "an empty path is 'list', not 'list/'"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_and_ranged_reads() {
    let d = double();
    let data: Vec<u8> = (0..(2 * RANGE_PIECE + 1000))
        .map(|i| (i % 251) as u8)
        .collect();
    d.put_file("lst/big.bin", &data);
    d.put_file("lst/small.txt", b"0123456789");
    let b = open(&d);

    assert_eq!(
        read(&b, "lst/small.txt", None).await.unwrap(),
        b"0123456789"
    );
    assert_eq!(read(&b, "lst/big.bin", None).await.unwrap(), data);
    assert!(d
        .requests()
        .iter()
        .any(|r| r.path_and_query.ends_with("/fetch/lst/big.bin") && r.range.is_none()));

    let tail = read(&b, "lst/big.bin", Some(ByteRange::From(1)))
        .await
        .unwrap();
    assert_eq!(tail, &data[1..]);
    let ranged: Vec<String> = d
        .requests()
        .iter()
        .filter(|r| r.path_and_query.ends_with("/webdav/lst/big.bin"))
        .map(|r| r.range.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        ranged.len(),
        3,
        "a long range is read in bounded pieces, never whole through webdav: {ranged:?}"
    );
    assert!(ranged.iter().all(|r| !r.ends_with('-')), "{ranged:?}");
    assert_eq!(
        read(&b, "lst/small.txt", Some(ByteRange::Suffix(3)))
            .await
            .unwrap(),
        b"789"
    );
    assert_eq!(
        read(&b, "lst/small.txt", Some(ByteRange::bounded(2, 5).unwrap()))
            .await
            .unwrap(),
        b"234"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_are_checked_against_the_listed_size() {
    let d = double();
    d.put_file("lst/f.bin", &[7u8; 5000]);
    d.put_file("lst/naïve-ж.txt", b"not latin-1");
    d.mkdir("lst/dir");
    let b = open(&d);

    d.push_fault(Fault::FetchShort(1000));
    let e = read(&b, "lst/f.bin", None).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(
        e.to_string().contains("ended after 1000 of 5000 bytes"),
        "{e}"
    );

    // A missing file is never fetched (the service would answer 200 with an HTML page).
    let before = d.requests().len();
    assert!(
        d.requests()
            .iter()
            .any(|r| r.path_and_query.contains("/fetch/")),
        "a read fetches through /fetch/"
    );
    let e = read(&b, "lst/missing.bin", None).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(
        d.requests().len() > before,
        "the service was asked about it"
    );
    assert!(d.requests()[before..]
        .iter()
        .all(|r| !r.path_and_query.contains("/fetch/")));
    let e = read(&b, "lst/dir", None).await.unwrap_err();
    assert!(matches!(e, Error::Usage { .. }), "{e}");

    // fetch/ answers 500 for names outside Latin-1: those are read through webdav.
    assert_eq!(
        read(&b, "lst/naïve-ж.txt", None).await.unwrap(),
        b"not latin-1"
    );

    // The transfer engine resumes a short fetch with a ranged read (files of 1 MiB and more).
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 7) as u8).collect();
    d.put_file("lst/big.bin", &big);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("big.bin");
    d.push_fault(Fault::FetchShort(1_000_000));
    // Resumed by the retry layer (every backend is opened behind it).
    let b = Retrying::new(
        std::sync::Arc::new(b),
        RetryPolicy::attempts(4).with_delays(Duration::from_millis(10), Duration::from_millis(50)),
    );
    let opts = TransferOptions::default();
    transfer::download_file(&b, &rp("lst/big.bin"), None, &target, &opts)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), big);
    assert!(d
        .requests()
        .iter()
        .any(|r| r.path_and_query.ends_with("/webdav/lst/big.bin")
            && r.range.as_deref() == Some("bytes=1000000-2999999")));
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_land_in_the_user_folder() {
    let d = double();
    let b = open(&d);
    let home = d.user_folder("Alice.Smith-42");
    assert_eq!(home, "lst/users/alice_smith___", "[^0-1a-z] becomes '_'");
    assert_eq!(b.home().await.unwrap(), rp(&home));

    let put = |overwrite: bool| {
        PutOptions::default()
            .with_overwrite(overwrite)
            .with_create_parents(true)
    };
    let out = b
        .put(
            &rp("results/run 1.h5"),
            Upload::from_bytes(&b"first"[..]),
            put(false),
        )
        .await
        .unwrap();
    assert_eq!(out.path, rp(&format!("{home}/results/run 1.h5")));
    assert_eq!(out.size, 5);
    assert_eq!(
        d.read_file(&format!("{home}/results/run 1.h5")).unwrap(),
        b"first"
    );
    // Relative paths read from the user folder too.
    let v = b.list_all(&rp("results")).await.unwrap();
    assert_eq!(v[0].path, rp("results/run 1.h5"));
    assert_eq!(read(&b, "results/run 1.h5", None).await.unwrap(), b"first");

    let e = b
        .put(
            &rp("results/run 1.h5"),
            Upload::from_bytes(&b"second"[..]),
            put(false),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    // The service answers an overwrite with 204: success.
    let out = b
        .put(
            &rp(&format!("{home}/results/run 1.h5")),
            Upload::from_bytes(&b"second"[..]),
            put(true),
        )
        .await
        .unwrap();
    assert_eq!(out.path, rp(&format!("{home}/results/run 1.h5")));
    assert_eq!(
        d.read_file(&format!("{home}/results/run 1.h5")).unwrap(),
        b"second"
    );

    // An empty file.
    let out = b
        .put(&rp("empty"), Upload::from_bytes(Vec::new()), put(false))
        .await
        .unwrap();
    assert_eq!(out.size, 0);
    assert_eq!(d.read_file(&format!("{home}/empty")).unwrap(), b"");

    // A file streamed from disk.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("big");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 13) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let out = b
        .put(
            &rp("a/b/c/big"),
            Upload::from_file(&local).await.unwrap(),
            put(false),
        )
        .await
        .unwrap();
    assert_eq!(out.size, data.len() as u64);
    assert_eq!(d.read_file(&format!("{home}/a/b/c/big")).unwrap(), data);

    // Outside the user folder: refused before anything is sent.
    let before = d.requests().len();
    assert!(
        d.requests()
            .iter()
            .any(|r| r.path_and_query.contains("/upload/")),
        "the uploads above went through /upload/"
    );
    let e = b
        .put(&rp("lst/DL1/x"), Upload::from_bytes(&b"x"[..]), put(false))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains(&format!("/{home}/")), "{e}");
    assert!(d.requests()[before..]
        .iter()
        .all(|r| !r.path_and_query.contains("/upload/")));
    let e = b
        .put(&rp("x..y"), Upload::from_bytes(&b"x"[..]), put(false))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidPath { .. }), "{e}");
    assert!(e.to_string().contains("'..'"), "{e}");

    // mkdir with MKCOL inside the user folder.
    b.mkdir(&rp("m/n"), true).await.unwrap();
    assert!(d.storage().join(&home).join("m/n").is_dir());
    b.mkdir(&rp("m/n"), true).await.unwrap();
    assert!(matches!(
        b.mkdir(&rp("m"), false).await,
        Err(Error::Conflict { .. })
    ));
    b.mkdir(&rp(&format!("{home}/m/o")), false).await.unwrap();
    assert!(matches!(
        b.mkdir(&rp("p/q"), false).await,
        Err(Error::NotFound { .. })
    ));
    let e = b.mkdir(&rp("cta/other"), true).await.unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_visible_users_folder_is_used() {
    let d = PlatformDouble::start(PlatformConfig {
        users: vec![HubUser::new("bob", "bob-token")],
        lst_users: false,
        ..Default::default()
    })
    .unwrap();
    let b = open_with(&d, &[("JUPYTERHUB_API_TOKEN", "bob-token")], None);
    let out = b
        .put(
            &rp("x.txt"),
            Upload::from_bytes(&b"x"[..]),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.path, rp("cta/users/bob/x.txt"));

    let d = PlatformDouble::start(PlatformConfig {
        users: vec![HubUser::new("bob", "bob-token")],
        lst_users: false,
        cta_users: false,
        ..Default::default()
    })
    .unwrap();
    let b = open_with(&d, &[("JUPYTERHUB_API_TOKEN", "bob-token")], None);
    let e = b
        .put(
            &rp("x.txt"),
            Upload::from_bytes(&b"x"[..]),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("neither is visible"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_answers() {
    let d = double();
    d.put_file("lst/f(1).txt", b"x");
    let b = open(&d);

    d.push_fault(Fault::ListNotJson);
    let e = b.list_all(&rp("lst")).await.unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("is not JSON"), "{e}");

    d.push_fault(Fault::ListHtml);
    let e = b.list_all(&rp("lst")).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(e.hint().unwrap().contains(&d.token_page()), "{e:?}");

    d.push_fault(Fault::UploadWithoutPath);
    let e = b
        .put(
            &rp("np.txt"),
            Upload::from_bytes(&b"x"[..]),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("no 'path'"), "{e}");

    d.push_fault(Fault::UploadTruncated);
    let e = b
        .put(
            &rp("empty.txt"),
            Upload::from_bytes(&b"12345"[..]),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Integrity { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("sent 5 bytes but the storage lists 4"),
        "{e}"
    );

    // `list/<name with '('>` fails in the service (500): a file is found through the
    // listing of its parent; a directory cannot be, and that is said plainly (no retry).
    let before = d.requests().len();
    let e = b.stat(&rp("lst/f(1).txt")).await.unwrap();
    assert_eq!(e.size, Some(1));
    let lists: Vec<String> = d.requests()[before..]
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert!(
        lists
            .iter()
            .any(|p| p.ends_with("/list/lst/f%281%29.txt") || p.ends_with("/list/lst/f(1).txt")),
        "{lists:?}"
    );
    d.put_file("lst/d(2)/x", b"x");
    let before = d.requests().len();
    let e = b.list_all(&rp("lst/d(2)")).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("parentheses"), "{e}");
    assert!(e.hint().unwrap().contains("cta profile"), "{e:?}");
    assert!(!e.is_temporary());
    assert_eq!(d.requests().len() - before, 1, "asked once, not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_and_rename_are_not_offered() {
    let d = double();
    d.put_file("lst/users/alice_smith___/x", b"x");
    let b = open(&d);
    let e = b.delete(&rp("x"), false).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "'delete' is not supported by the downloadservice backend"
    );
    assert!(
        e.hint().unwrap().contains("--profile cta rm x"),
        "{:?}",
        e.hint()
    );
    let e = b.rename(&rp("x"), &rp("y"), false).await.unwrap_err();
    assert!(
        e.hint().unwrap().contains("--profile cta mv x y"),
        "{:?}",
        e.hint()
    );
    assert!(!b.capabilities().delete && !b.capabilities().rename);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens() {
    let d = double();
    d.put_file("lst/f", b"x");

    // A token the hub does not know: 401 thanks to the JSON content type.
    let b = open_with(&d, &[("JUPYTERHUB_API_TOKEN", "wrong")], None);
    let e = b.list_all(&rp("lst")).await.unwrap_err();
    let Error::Auth {
        problem,
        message,
        hint,
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*problem, AuthProblem::Refused);
    assert!(
        message.contains("variable JUPYTERHUB_API_TOKEN") && message.contains("401"),
        "{message}"
    );
    assert!(hint.contains(&d.token_page()), "{hint}");
    assert!(
        !message.contains("wrong"),
        "never the token itself: {message}"
    );

    // A redirect to the login page (a request without the JSON content type) is refused too.
    let b = open_with(
        &d,
        &[
            ("JUPYTERHUB_API_TOKEN", "wrong"),
            ("JUPYTERHUB_USER", "alice"),
        ],
        None,
    );
    let e = b.mkdir(&rp("x"), true).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(e.to_string().contains("/hub/login"), "{e}");

    // A token without the service's scope.
    let b = open_with(&d, &[("JUPYTERHUB_API_TOKEN", "no-scope-token")], None);
    let e = b.list_all(&rp("lst")).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("access:services!service=downloadservice"),
        "{e}"
    );

    // None, or only white space.
    let b = open_with(&d, &[], None);
    let e = b.list_all(&rp("lst")).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Auth {
                problem: AuthProblem::Missing,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("tried, in order: variable CTADATA_TOKEN, variable JUPYTERHUB_API_TOKEN"),
        "{e}"
    );
    let b = open_with(&d, &[("JUPYTERHUB_API_TOKEN", " \t ")], None);
    let e = b.list_all(&rp("lst")).await.unwrap_err();
    assert!(
        e.to_string().contains(
            "the hub token in variable JUPYTERHUB_API_TOKEN is empty or only white space"
        ),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    std::fs::write(&tf, "\n").unwrap();
    let b = open_with(&d, &[], Some(&tf));
    let e = b.list_all(&rp("lst")).await.unwrap_err();
    assert!(
        e.to_string().contains("is empty or only white space"),
        "{e}"
    );

    // --token-file first, then CTADATA_TOKEN, then JUPYTERHUB_API_TOKEN.
    std::fs::write(&tf, format!("{TOKEN}\n")).unwrap();
    let b = open_with(&d, &[("JUPYTERHUB_API_TOKEN", "wrong")], Some(&tf));
    assert_eq!(
        names(&b.list_all(&rp("lst")).await.unwrap()),
        ["f", "users"]
    );
    let b = open_with(
        &d,
        &[("CTADATA_TOKEN", TOKEN), ("JUPYTERHUB_API_TOKEN", "wrong")],
        None,
    );
    assert_eq!(
        names(&b.list_all(&rp("lst")).await.unwrap()),
        ["f", "users"]
    );
    let reqs = d.requests();
    assert!(
        reqs.iter().filter(|r| r.authorization).count() >= 2,
        "two listings with a token: {reqs:?}"
    );
    assert!(reqs.iter().all(|r| !r.token_in_query), "{reqs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn recursive_transfers() {
    let d = double();
    let b: Arc<dyn StorageBackend> = Arc::new(open(&d));
    let src = tempfile::tempdir().unwrap();
    for (p, data) in [
        ("a.txt", "A"),
        ("sub/b c.txt", "BB"),
        ("sub/deeper/ε", "CCC"),
    ] {
        let f = src.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    }
    let opts = TransferOptions::default();
    let s = transfer::upload_tree(b.clone(), src.path(), &rp("tree"), &opts)
        .await
        .unwrap();
    assert_eq!((s.transferred, s.failures.len()), (3, 0), "{s:?}");
    let home = d.user_folder("Alice.Smith-42");
    assert_eq!(
        d.read_file(&format!("{home}/tree/sub/deeper/ε")).unwrap(),
        b"CCC"
    );
    // A second run sees what is there.
    let mut again = TransferOptions::default();
    again.skip_existing = true;
    let s = transfer::upload_tree(b.clone(), src.path(), &rp("tree"), &again)
        .await
        .unwrap();
    assert_eq!((s.transferred, s.skipped), (0, 3), "{s:?}");

    let dst = tempfile::tempdir().unwrap();
    let s = transfer::download_tree(b.clone(), &rp(&format!("{home}/tree")), dst.path(), &opts)
        .await
        .unwrap();
    assert_eq!((s.transferred, s.failures.len()), (3, 0), "{s:?}");
    assert_eq!(
        std::fs::read(dst.path().join("sub/b c.txt")).unwrap(),
        b"BB"
    );
    assert_eq!(
        std::fs::read(dst.path().join("sub/deeper/ε")).unwrap(),
        b"CCC"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_name_falls_back_to_jupyterhub_user() {
    let d = PlatformDouble::start(PlatformConfig {
        users: vec![HubUser::new("Dora", "dora-token")],
        hub_api_user: false,
        ..Default::default()
    })
    .unwrap();
    let b = open_with(
        &d,
        &[
            ("JUPYTERHUB_API_TOKEN", "dora-token"),
            ("JUPYTERHUB_USER", "Dora"),
        ],
        None,
    );
    let out = b
        .put(
            &rp("x"),
            Upload::from_bytes(&b"x"[..]),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.path, rp("lst/users/dora/x"));

    let b = open_with(&d, &[("JUPYTERHUB_API_TOKEN", "dora-token")], None);
    let e = b.stat(&rp("x")).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(
        e.to_string().contains("cannot tell your hub user name"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("JUPYTERHUB_USER"), "{e:?}");
    // Paths from the storage root need no user name.
    assert!(b.stat(&rp("lst/users/dora/x")).await.unwrap().is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls() {
    let ca = ctadata_testsupport::TestCa::new();
    let d = PlatformDouble::start(PlatformConfig {
        users: vec![HubUser::new("alice", TOKEN)],
        tls: Some(ca.clone()),
        ..Default::default()
    })
    .unwrap();
    assert!(d.downloadservice_url().starts_with("https://"));
    d.put_file("lst/f", b"over tls");
    let tokens = [("JUPYTERHUB_API_TOKEN", TOKEN)];
    let b = open_full(&d, &tokens, None, Some(&ca.ca_cert_path()));
    assert_eq!(read(&b, "lst/f", None).await.unwrap(), b"over tls");
    let out = b
        .put(
            &rp("t.txt"),
            Upload::from_bytes(&b"up"[..]),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.path, rp("lst/users/alice/t.txt"));
    let untrusted = open_full(&d, &tokens, None, None);
    let e = untrusted.list_all(&rp("lst")).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");
}
