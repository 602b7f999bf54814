//! Byte-level checks with a raw TCP client, from inside a tokio test (the servers run on
//! their own runtimes and can be dropped from async code).

use ctadata_testsupport::{DcacheConfig, DcacheDouble, EmbeddedDav};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn host_port(url: &str) -> String {
    url.split("://").nth(1).unwrap().to_string()
}

#[tokio::test]
async fn the_door_never_sends_100_continue_and_closes_after_the_redirect() {
    let dc = DcacheDouble::start(DcacheConfig {
        redirect_delay: Duration::from_millis(300),
        ..Default::default()
    });
    let addr = host_port(&dc.url());
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    s.write_all(
        format!(
            "PUT /x.bin HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    // The door closes the connection after its answer, so this ends.
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .expect("the door closes the connection")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 307 "), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(dc.stats().door_body_bytes, 0);
    let url = dc.url();
    drop(dc);
    // Dropped: the port no longer answers.
    assert!(TcpStream::connect(host_port(&url)).await.is_err());
}

#[tokio::test]
async fn a_small_body_sent_with_the_head_is_counted_exactly() {
    let dc = DcacheDouble::start(DcacheConfig::default());
    let addr = host_port(&dc.url());
    // One write: head and body arrive together, hyper reads them in one go.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        format!("PUT /small HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 10\r\n\r\n0123456789")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 307 "));
    assert_eq!(dc.stats().door_body_bytes, 10);
    // After another request on the same connection (keep-alive), too.
    dc.reset_stats();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        format!(
            "PROPFIND / HTTP/1.1\r\nHost: {addr}\r\nDepth: 0\r\nContent-Length: 0\r\n\r\n\
             PUT /small2 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 7\r\n\r\nabcdefg"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 207 ") && answer.contains("HTTP/1.1 307 "));
    assert_eq!(dc.stats().door_body_bytes, 7);
}

#[tokio::test(flavor = "current_thread")]
async fn embedded_dav_stops_on_drop() {
    let root = tempfile::tempdir().unwrap();
    let dav = EmbeddedDav::start(root.path());
    let addr = host_port(&dav.url());
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        format!("OPTIONS / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(dav);
    assert!(TcpStream::connect(&addr).await.is_err());
}
