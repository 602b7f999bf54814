//! The OpenID provider (`oidc-provider` under node), checked with curl as the client.

use base64::Engine as _;
use ctadata_testsupport::oidc::AUDIENCE;
use ctadata_testsupport::{OidcOptions, OidcProvider, OidcStats};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// One curl request: (status, JSON body or `Value::Null`).
fn curl(args: &[&str]) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl is installed");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn basic(p: &OidcProvider) -> String {
    format!("{}:{}", p.client_id(), p.client_secret())
}

fn discovery(p: &OidcProvider) -> Value {
    let (status, doc) = curl(&[&format!("{}/.well-known/openid-configuration", p.issuer())]);
    assert_eq!(status, 200, "{doc}");
    doc
}

thread_local! {
    /// Discovery documents by issuer, fetched once per test thread (fewer curl runs per poll).
    static DISCOVERED: std::cell::RefCell<std::collections::HashMap<String, Value>> =
        Default::default();
}

/// An endpoint from the (cached) discovery document.
fn endpoint(p: &OidcProvider, name: &str) -> String {
    DISCOVERED.with(|d| {
        let mut d = d.borrow_mut();
        let doc = d.entry(p.issuer()).or_insert_with(|| discovery(p));
        str_of(doc, name).to_string()
    })
}

/// POST to the device authorization endpoint with HTTP basic auth.
fn device_authorization(p: &OidcProvider, scope: Option<&str>) -> Value {
    let url = endpoint(p, "device_authorization_endpoint");
    let scope = scope.map(|s| format!("scope={s}"));
    let user = basic(p);
    let mut args = vec!["-u", user.as_str(), "-X", "POST"];
    if let Some(s) = &scope {
        args.extend(["--data-urlencode", s.as_str()]);
    }
    args.push(&url);
    let (status, body) = curl(&args);
    assert_eq!(status, 200, "{body}");
    body
}

fn token(p: &OidcProvider, form: &[(&str, &str)]) -> (u16, Value) {
    token_as(p, &basic(p), form)
}

fn token_as(p: &OidcProvider, user: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let url = endpoint(p, "token_endpoint");
    let fields: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["-u", user];
    for f in &fields {
        args.extend(["--data-urlencode", f.as_str()]);
    }
    args.push(&url);
    curl(&args)
}

fn poll(p: &OidcProvider, device_code: &str) -> (u16, Value) {
    token(
        p,
        &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
    )
}

fn refresh(p: &OidcProvider, refresh_token: &str) -> (u16, Value) {
    token(
        p,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
}

fn error(reply: &(u16, Value)) -> (u16, &str) {
    (reply.0, reply.1["error"].as_str().unwrap_or("<none>"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
}

/// Header and payload of a JWT (signature not checked).
fn jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWS: {token}");
    let part = |s: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    (part(parts[0]), part(parts[1]))
}

fn wait_interval(p: &OidcProvider) {
    std::thread::sleep(p.options().interval + Duration::from_millis(100));
}

/// Device authorization, approval by `user`, one poll: the token response.
fn login(p: &OidcProvider, scope: Option<&str>, user: &str) -> Value {
    let auth = device_authorization(p, scope);
    p.approve(str_of(&auth, "user_code"), user).unwrap();
    let reply = poll(p, str_of(&auth, "device_code"));
    assert_eq!(reply.0, 200, "{}", reply.1);
    reply.1
}

fn start() -> OidcProvider {
    OidcProvider::start(OidcOptions::default()).expect("oidc-provider starts")
}

#[test]
fn discovery_has_the_device_revocation_and_jwks_endpoints() {
    let p = start();
    let doc = discovery(&p);
    let iss = p.issuer();
    assert_eq!(doc["issuer"], iss.as_str());
    assert!(iss.starts_with("http://127.0.0.1:"), "{iss}");
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{iss}/device/auth")
    );
    assert_eq!(doc["token_endpoint"], format!("{iss}/token"));
    assert_eq!(
        doc["revocation_endpoint"],
        format!("{iss}/token/revocation")
    );
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{iss}/token/introspection")
    );
    assert_eq!(doc["jwks_uri"], format!("{iss}/jwks"));
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&Value::from(DEVICE_GRANT)), "{doc}");
    assert!(grants.contains(&Value::from("refresh_token")), "{doc}");
    let (status, jwks) = curl(&[str_of(&doc, "jwks_uri")]);
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert!(keys[0].get("d").is_none(), "private key published: {jwks}");
    let from_helper: Value = serde_json::from_str(&p.jwks()).unwrap();
    assert_eq!(from_helper, jwks);
}

#[test]
fn full_device_flow_gives_a_jwt_access_token_a_refresh_token_and_an_id_token() {
    let p = start();
    let iss = p.issuer();
    let auth = device_authorization(&p, Some("openid offline_access"));
    let user_code = str_of(&auth, "user_code");
    let device_code = str_of(&auth, "device_code");
    assert_eq!(auth["verification_uri"], format!("{iss}/device"));
    assert_eq!(
        auth["verification_uri_complete"],
        format!("{iss}/device?user_code={user_code}")
    );
    assert_eq!(auth["expires_in"], 600);
    assert_eq!(auth["interval"], 1);
    assert_eq!(user_code.len(), 9, "{auth}");

    assert_eq!(
        error(&poll(&p, device_code)),
        (400, "authorization_pending")
    );
    p.approve(user_code, "alice").unwrap();
    wait_interval(&p);
    let (status, tok) = poll(&p, device_code);
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 60);
    assert_eq!(tok["scope"], "openid offline_access");
    assert_eq!(tok["refresh_expires_in"], 86400);
    assert!(
        !str_of(&tok, "refresh_token").contains('.'),
        "opaque: {tok}"
    );

    let (header, at) = jwt(str_of(&tok, "access_token"));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    let jwks: Value = serde_json::from_str(&p.jwks()).unwrap();
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    assert_eq!(at["iss"], iss.as_str());
    assert_eq!(at["sub"], "alice");
    assert_eq!(at["preferred_username"], "alice");
    assert_eq!(at["aud"], AUDIENCE);
    assert_eq!(at["client_id"], p.client_id());
    assert_eq!(at["scope"], "openid offline_access");
    let (iat, exp) = (at["iat"].as_i64().unwrap(), at["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 60, "{at}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((iat - now).abs() <= 5, "iat {iat} now {now}");

    let (_, id) = jwt(str_of(&tok, "id_token"));
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["aud"], p.client_id());
    assert_eq!(id["iss"], iss.as_str());

    // The refresh token works...
    let (status, refreshed) = refresh(&p, str_of(&tok, "refresh_token"));
    assert_eq!(status, 200, "{refreshed}");
    // ...until the device code is polled again: the library then revokes what it issued.
    wait_interval(&p);
    assert_eq!(error(&poll(&p, device_code)), (400, "invalid_grant"));
    assert_eq!(
        error(&refresh(&p, str_of(&refreshed, "refresh_token"))),
        (400, "invalid_grant")
    );
}

#[test]
fn no_scope_gets_the_default_scopes_and_a_refresh_token_but_no_id_token() {
    let p = start();
    let tok = login(&p, None, "bob");
    assert!(tok.get("id_token").is_none(), "{tok}");
    assert_eq!(tok["scope"], "profile email");
    assert!(tok["refresh_token"].is_string(), "{tok}");
    let (_, at) = jwt(str_of(&tok, "access_token"));
    assert_eq!(
        (at["sub"].as_str(), at["aud"].as_str()),
        (Some("bob"), Some(AUDIENCE))
    );
    assert_eq!(at["scope"], "profile email");
    let (status, refreshed) = refresh(&p, str_of(&tok, "refresh_token"));
    assert_eq!(status, 200, "{refreshed}");
}

#[test]
fn polling_faster_than_the_interval_is_slow_down() {
    let p = OidcProvider::start(OidcOptions {
        interval: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let auth = device_authorization(&p, Some("openid"));
    assert_eq!(auth["interval"], 2);
    let code = str_of(&auth, "device_code");
    assert_eq!(error(&poll(&p, code)), (400, "authorization_pending"));
    assert_eq!(error(&poll(&p, code)), (400, "slow_down"));
    // A slow_down does not restart the window: it runs from the last accepted poll.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(error(&poll(&p, code)), (400, "slow_down"));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(error(&poll(&p, code)), (400, "authorization_pending"));
    // Another code has its own window.
    let other = device_authorization(&p, Some("openid"));
    assert_eq!(
        error(&poll(&p, str_of(&other, "device_code"))),
        (400, "authorization_pending")
    );
    let stats = p.stats();
    assert_eq!((stats.device_grants, stats.slow_downs), (5, 2), "{stats:?}");
}

#[test]
fn denied_code_is_access_denied() {
    let p = start();
    let auth = device_authorization(&p, Some("openid offline_access"));
    let user_code = str_of(&auth, "user_code");
    p.deny(user_code).unwrap();
    assert_eq!(
        error(&poll(&p, str_of(&auth, "device_code"))),
        (400, "access_denied")
    );
    // The code cannot be approved any more.
    let err = p.approve(user_code, "alice").unwrap_err();
    assert!(err.to_string().contains("incorrect"), "{err}");
}

#[test]
fn expired_code_is_expired_token() {
    let p = OidcProvider::start(OidcOptions {
        device_ttl: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let auth = device_authorization(&p, Some("openid"));
    assert_eq!(auth["expires_in"], 2);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(
        error(&poll(&p, str_of(&auth, "device_code"))),
        (400, "expired_token")
    );
    assert!(p.approve(str_of(&auth, "user_code"), "alice").is_err());
    assert_eq!(
        error(&poll(&p, "no-such-device-code")),
        (400, "invalid_grant")
    );
}

#[test]
fn unknown_user_code_cannot_be_approved() {
    let p = start();
    let err = p.approve("BCDF-GHJK", "alice").unwrap_err();
    assert!(err.to_string().contains("incorrect"), "{err}");
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_newest_too() {
    let p = OidcProvider::start(OidcOptions {
        access_ttl: Duration::from_secs(5),
        ..Default::default()
    })
    .unwrap();
    let tok = login(&p, Some("openid offline_access"), "alice");
    assert_eq!(tok["expires_in"], 5);
    let rt1 = str_of(&tok, "refresh_token");
    let (status, second) = refresh(&p, rt1);
    assert_eq!(status, 200, "{second}");
    let rt2 = str_of(&second, "refresh_token");
    assert_ne!(rt1, rt2);
    assert_eq!(second["expires_in"], 5);
    assert_ne!(second["access_token"], tok["access_token"]);
    let (_, at) = jwt(str_of(&second, "access_token"));
    assert_eq!(
        (at["sub"].as_str(), at["aud"].as_str()),
        (Some("alice"), Some(AUDIENCE))
    );
    let (_, id) = jwt(str_of(&second, "id_token"));
    assert_eq!(id["sub"], "alice");

    let (status, third) = refresh(&p, rt2);
    assert_eq!(status, 200, "{third}");
    let rt3 = str_of(&third, "refresh_token");
    // Reusing a rotated token fails and revokes the grant: the newest one dies too.
    assert_eq!(error(&refresh(&p, rt1)), (400, "invalid_grant"));
    assert_eq!(error(&refresh(&p, rt3)), (400, "invalid_grant"));
    let stats = p.stats();
    assert_eq!(
        stats,
        OidcStats {
            token_requests: 5,
            device_grants: 1,
            refresh_grants: 4,
            slow_downs: 0,
            revocations: 0,
        }
    );
}

#[test]
fn revoked_refresh_token_is_unusable() {
    let p = start();
    let tok = login(&p, Some("openid offline_access"), "alice");
    let rt = str_of(&tok, "refresh_token");
    let introspect = |token: &str| {
        let url = endpoint(&p, "introspection_endpoint");
        let (status, body) = curl(&[
            "-u",
            &basic(&p),
            "--data-urlencode",
            &format!("token={token}"),
            &url,
        ]);
        assert_eq!(status, 200, "{body}");
        body["active"].as_bool().unwrap()
    };
    assert!(introspect(rt));
    let url = endpoint(&p, "revocation_endpoint");
    let (status, body) = curl(&[
        "-u",
        &basic(&p),
        "--data-urlencode",
        &format!("token={rt}"),
        "-d",
        "token_type_hint=refresh_token",
        &url,
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(!introspect(rt));
    assert_eq!(error(&refresh(&p, rt)), (400, "invalid_grant"));
    let stats = p.stats();
    assert_eq!(
        (stats.revocations, stats.refresh_grants),
        (1, 1),
        "{stats:?}"
    );
}

#[test]
fn wrong_client_secret_is_invalid_client() {
    let p = start();
    let url = endpoint(&p, "device_authorization_endpoint");
    let wrong = format!("{}:wrong", p.client_id());
    let (status, body) = curl(&["-u", &wrong, "-d", "scope=openid", &url]);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    let tok = login(&p, Some("openid offline_access"), "alice");
    let rt = str_of(&tok, "refresh_token");
    let reply = token_as(
        &p,
        &wrong,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    );
    assert_eq!(error(&reply), (401, "invalid_client"));
    let reply = token_as(
        &p,
        "someone-else:cta-test-secret",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    );
    assert_eq!(error(&reply), (401, "invalid_client"));
    // The right secret still works: the refused attempts consumed nothing.
    assert_eq!(refresh(&p, rt).0, 200);
}

#[test]
fn custom_client_and_counters() {
    let p = OidcProvider::start(OidcOptions {
        client_id: "other-client".into(),
        client_secret: "other-secret".into(),
        interval: Duration::ZERO,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(p.stats(), OidcStats::default());
    let auth = device_authorization(&p, Some("openid offline_access"));
    assert_eq!(auth["interval"], 0);
    let code = str_of(&auth, "device_code");
    // Interval zero: no slow_down however fast the polls.
    for _ in 0..3 {
        assert_eq!(error(&poll(&p, code)), (400, "authorization_pending"));
    }
    p.approve(str_of(&auth, "user_code"), "carol").unwrap();
    let (status, tok) = poll(&p, code);
    assert_eq!(status, 200, "{tok}");
    let (_, at) = jwt(str_of(&tok, "access_token"));
    assert_eq!(at["client_id"], "other-client");
    assert_eq!(at["sub"], "carol");
    assert_eq!(refresh(&p, str_of(&tok, "refresh_token")).0, 200);
    assert_eq!(
        p.stats(),
        OidcStats {
            token_requests: 5,
            device_grants: 4,
            refresh_grants: 1,
            slow_downs: 0,
            revocations: 0,
        }
    );
}

#[test]
fn dropping_the_handle_stops_node() {
    let p = start();
    let addr = p.addr();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    assert!(p.log().contains("oidc-provider"), "{}", p.log());
    drop(p);
    assert!(std::net::TcpStream::connect(addr).is_err());
}
