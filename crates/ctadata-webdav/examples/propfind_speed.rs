//! How fast a large PROPFIND answer is parsed (no network): `cargo run --release -p
//! ctadata-webdav --example propfind_speed -- 1000000`.

use std::time::Instant;

use ctadata_webdav::propfind::MultistatusReader;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><d:multistatus xmlns:d="DAV:" xmlns:ns1="http://www.dcache.org/2013/webdav" xmlns:ns2="http://srm.lbl.gov/StorageResourceManager"><d:response><d:href>/cta/huge/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"#,
    );
    for k in 0..n {
        xml.push_str(&format!("<d:response><d:href>/cta/huge/entry-{k:07}.dat</d:href><d:propstat><d:prop><d:resourcetype/><d:getcontentlength>0</d:getcontentlength><d:getlastmodified>Tue, 14 Nov 2023 22:13:20 GMT</d:getlastmodified><d:getetag>&quot;synthetic-{k}&quot;</d:getetag><ns1:Checksums>adler32=00000001</ns1:Checksums><ns2:FileLocality>ONLINE</ns2:FileLocality></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>\n"));
    }
    xml.push_str("</d:multistatus>");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = Instant::now();
        let mut r = MultistatusReader::new(tokio::io::BufReader::with_capacity(
            64 * 1024,
            xml.as_bytes(),
        ));
        let mut c = 0usize;
        while let Some(x) = r.next_response().await.unwrap() {
            c += x.href.len();
        }
        let el = t.elapsed();
        println!(
            "parse: {n} entries, {} MB, {:.2} s, {:.0} MB/s ({c})",
            xml.len() / 1_000_000,
            el.as_secs_f64(),
            xml.len() as f64 / 1e6 / el.as_secs_f64()
        );
        let t = Instant::now();
        let mut r =
            MultistatusReader::new(std::io::BufReader::with_capacity(64 * 1024, xml.as_bytes()));
        let mut c = 0usize;
        while let Some(x) = r.next_response_blocking().unwrap() {
            c += x.href.len();
        }
        println!("parse blocking: {:.2} s ({c})", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut xr = quick_xml::NsReader::from_reader(std::io::BufReader::with_capacity(
            64 * 1024,
            xml.as_bytes(),
        ));
        let mut buf = Vec::new();
        let mut cnt = 0usize;
        loop {
            buf.clear();
            match xr.read_resolved_event_into(&mut buf).unwrap() {
                (_, quick_xml::events::Event::Eof) => break,
                (_, quick_xml::events::Event::End(e)) if e.local_name().as_ref() == b"response" => {
                    cnt += 1
                }
                _ => {}
            }
        }
        println!(
            "sync events only: {:.2} s ({cnt})",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let mut xr = quick_xml::NsReader::from_reader(tokio::io::BufReader::with_capacity(
            64 * 1024,
            xml.as_bytes(),
        ));
        let mut cnt = 0usize;
        loop {
            buf.clear();
            match xr.read_resolved_event_into_async(&mut buf).await.unwrap() {
                (_, quick_xml::events::Event::Eof) => break,
                (_, quick_xml::events::Event::End(e)) if e.local_name().as_ref() == b"response" => {
                    cnt += 1
                }
                _ => {}
            }
        }
        println!(
            "async events only: {:.2} s ({cnt})",
            t.elapsed().as_secs_f64()
        );
        let base = ctadata_webdav::urls::Base::new("https://door:2880/").unwrap();
        let req = reqwest::Url::parse("https://door:2880/cta/huge/").unwrap();
        let t = Instant::now();
        let mut ok = 0;
        for k in 0..n {
            let h = format!("/cta/huge/entry-{k:07}.dat");
            if base.href_to_path(&h, &req).is_some() {
                ok += 1;
            }
        }
        println!("href_to_path: {:.2} s ({ok})", t.elapsed().as_secs_f64());
    });
}
