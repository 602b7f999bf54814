//! The platform double itself behaves as SPEC sections 4 and 5 describe, quirks included
//! (checked with plain HTTP, so that the backend's tests rest on a faithful double).

use std::io::{Read, Write};

use ctadata_testsupport::{HubUser, PlatformConfig, PlatformDouble, Scopes};
use reqwest::{Client, Method, StatusCode};

const TOKEN: &str = "tok";

fn start() -> PlatformDouble {
    let d = PlatformDouble::start(PlatformConfig {
        users: vec![
            HubUser::new("Eve.Q-2", TOKEN),
            HubUser {
                scopes: Scopes::NONE,
                ..HubUser::new("x", "noscope")
            },
        ],
        ..Default::default()
    })
    .unwrap();
    d.put_file("lst/DL1/a b+c.h5", b"0123456789");
    d.put_file("lst/DL1/h.xml", b"<d:href>/pnfs/cta.cscs.ch/lst/x</d:href>");
    d
}

async fn json(r: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(d: &PlatformDouble, path: &str) -> (StatusCode, String) {
    let r = client()
        .get(format!("{}{path}", d.downloadservice_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The status line as sent (reqwest hides reason phrases).
fn status_line(d: &PlatformDouble, method: &str, path: &str) -> String {
    let addr = d.url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "{method} /services/downloadservice/{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_quirks() {
    let d = start();
    let (s, body) = get(&d, "list").await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["href"], "");
    assert_eq!(v[0]["type"], "file", "the root's own entry");
    let (_, body) = get(&d, "list/lst/DL1").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v[0]["href"], "lst/DL1/",
        "the queried directory comes first"
    );
    let f = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "file")
        .unwrap();
    assert_eq!(f["href"], "lst/DL1/a%20b+c.h5", "still percent-encoded");
    assert_eq!(f["size"], "10", "a string");
    assert!(f["mtime"].as_str().unwrap().ends_with(" GMT"));
    let (_, body) = get(&d, "list/lst/DL1/a%20b+c.h5").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "a file lists itself");
    assert!(
        v[0]["url"].as_str().unwrap().matches("a%20b").count() == 2,
        "the url duplicates the path"
    );
    assert_eq!(get(&d, "list/").await.0, 404);
    let (s, body) = get(&d, "list/lst/nope").await;
    assert_eq!(s, 404);
    assert!(body.starts_with("Error: 404"), "{body}");
    assert_eq!(get(&d, "list/lst/a(b").await.0, 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication() {
    let d = start();
    let url = format!("{}list/lst", d.downloadservice_url());
    let r = client().get(&url).bearer_auth("bad").send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/hub/login"));
    let r = client()
        .get(&url)
        .bearer_auth("bad")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(json(r).await["message"], "Invalid or missing Bearer token");
    let r = client()
        .get(&url)
        .bearer_auth("noscope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("scopes are insufficient"));
    let r = client()
        .get(format!("{}/hub/api/user", d.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await["name"], "Eve.Q-2");
    // The old client's ?token= is accepted by the service (and logged as such).
    let r = client()
        .get(format!("{url}?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(d.requests().last().unwrap().token_in_query);
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_quirks() {
    let d = start();
    assert_eq!(
        get(&d, "fetch/lst/DL1/a%20b+c.h5").await,
        (StatusCode::OK, "0123456789".into())
    );
    let r = client()
        .get(format!(
            "{}fetch/lst/DL1/a%20b+c.h5",
            d.downloadservice_url()
        ))
        .bearer_auth(TOKEN)
        .header("range", "bytes=2-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "Range is not forwarded");
    assert!(r.headers().get("content-length").is_none(), "chunked");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=a b+c.h5"
    );
    assert_eq!(r.text().await.unwrap(), "0123456789");
    let (s, body) = get(&d, "fetch/lst/DL1/missing").await;
    assert_eq!(s, 200, "a missing file is a 200...");
    assert!(body.contains("<html>"), "...with an HTML page: {body}");
    assert_eq!(get(&d, "fetch/lst/a..b").await.0, 400);
    assert_eq!(
        get(&d, "fetch/lst/%D0%B6").await,
        (StatusCode::INTERNAL_SERVER_ERROR, String::new())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_quirks() {
    let d = start();
    let home = d.user_folder("Eve.Q-2");
    assert_eq!(home, "lst/users/eve_q__");
    let post = |path: &str, body: &'static str| {
        client()
            .post(format!("{}upload/{path}", d.downloadservice_url()))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
    };
    let r = post("f%20g.txt", "one").await.unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    assert_eq!(v["path"], format!("{home}/f g.txt"), "decoded");
    assert_eq!(v["total_written"], 3);
    assert_eq!(d.read_file(&format!("{home}/f g.txt")).unwrap(), b"one");
    let r = post("f%20g.txt", "two").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(post("no/parent.txt", "x").await.unwrap().status(), 409);
    d.mkdir(&format!("{home}/adir"));
    assert_eq!(post("adir", "x").await.unwrap().status(), 405);
    assert_eq!(post("a..b", "x").await.unwrap().status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn webdav_quirks() {
    let d = start();
    let base = format!("{}webdav/", d.downloadservice_url());
    let r = client()
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{base}lst/DL1/"),
        )
        .bearer_auth(TOKEN)
        .header("depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    let body = r.text().await.unwrap();
    assert!(
        body.contains(":href>/services/downloadservice/webdav/lst/DL1/"),
        "{body}"
    );
    assert!(!body.contains("pnfs"), "{body}");
    // The rewriting touches file contents too.
    let r = client()
        .get(format!("{base}lst/DL1/h.xml"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        "<d:href>/services/downloadservice/webdav/lst/x</d:href>"
    );
    let r = client()
        .get(format!("{base}lst/DL1/a%20b+c.h5"))
        .bearer_auth(TOKEN)
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(r.text().await.unwrap(), "234");
    let r = client()
        .head(format!("{base}lst/DL1/a%20b+c.h5"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], "0", "useless for sizes");
    let r = client()
        .delete(format!("{base}lst/users/eve_q__/x"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    let line = status_line(&d, "MKCOL", "webdav/lst/DL1/new/");
    assert_eq!(
        line,
        "HTTP/1.1 403 Missing rights to write in : lst/DL1/new/, you are not allowed to write in this folder"
    );
    assert!(d.storage().join("lst/DL1").is_dir() && !d.storage().join("lst/DL1/new").exists());
    let line = status_line(&d, "MKCOL", "webdav/lst/users/eve_q__/new/");
    assert!(
        line.starts_with("HTTP/1.1 201") || line.starts_with("HTTP/1.1 409"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn certificateservice_quirks() {
    let d = start();
    let url = format!("{}certificate", d.certificateservice_url());
    let r = client()
        .post(&url)
        .bearer_auth(TOKEN)
        .body("certificate=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415, "not JSON");
    let r = client()
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::json!({"certificate": "x", "certificate_key": "arc"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500, "an unknown key");
    assert!(r.text().await.unwrap().contains("Internal Server Error"));
    let r = client()
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::json!({"certificate": "x", "certificate_key": "cta"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "no valid certificate provided");
}
