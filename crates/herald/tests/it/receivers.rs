//! What a receiver can do to Herald: binary, invalid-UTF-8 and NUL-laden bodies, endless
//! bodies, malformed or huge headers, a connection closed mid-response. Each affects only
//! its own delivery; every other delivery is recorded as usual. Run on both stores.

use crate::on_both_stores;
use crate::support::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a raw receiver answers every request.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// `200` with body `abc\0def` plus binary bytes.
    NulBody,
    /// `500` with invalid UTF-8.
    InvalidUtf8,
    /// `200` with a chunked body that never ends.
    EndlessBody,
    /// `200` announcing 100 bytes, sending 10, then closing.
    ClosedMidResponse,
    /// A status line followed by a header line without a colon.
    MalformedHeaders,
    /// `200` with a 1 MiB header.
    HugeHeader,
}

/// A loopback TCP server speaking just enough HTTP/1.1 to misbehave; counts requests.
async fn raw_receiver(how: Misbehaviour) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            // Keep-alive like any server: a complete answer leaves the connection open for the
            // next request. (Closing it unannounced would race Herald's reuse of it, a failed
            // attempt this receiver never counted.)
            tokio::spawn(async move {
                while read_request(&mut sock).await.is_some() {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if answer(&mut sock, how).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/"), hits)
}

/// Reads one request (head and `content-length` body).
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(())
}

async fn answer(sock: &mut tokio::net::TcpStream, how: Misbehaviour) -> std::io::Result<()> {
    match how {
        Misbehaviour::NulBody => {
            let body = b"abc\0def\xff\xfe\x00\x01";
            sock.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes()).await?;
            sock.write_all(body).await
        }
        Misbehaviour::InvalidUtf8 => {
            let body = b"\xc3\x28 bad \xa0\xa1 utf8";
            let head = format!("HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\n\r\n", body.len());
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(body).await
        }
        Misbehaviour::EndlessBody => {
            sock.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await?;
            let piece = format!("1000\r\n{}\r\n", "x".repeat(4096));
            // Until Herald hangs up (it reads 4 KiB and drops the connection).
            loop {
                sock.write_all(piece.as_bytes()).await?;
            }
        }
        Misbehaviour::ClosedMidResponse => {
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789").await?;
            sock.shutdown().await
        }
        Misbehaviour::MalformedHeaders => {
            sock.write_all(b"HTTP/1.1 200 OK\r\nthis is not a header\r\n\r\n").await?;
            sock.shutdown().await
        }
        Misbehaviour::HugeHeader => {
            let head = format!("HTTP/1.1 200 OK\r\nx-huge: {}\r\ncontent-length: 0\r\n\r\n", "h".repeat(1 << 20));
            sock.write_all(head.as_bytes()).await?;
            sock.shutdown().await
        }
    }
}

async fn first_delivery(app: &TestApp, wh: &str) -> Option<Value> {
    let ds = app.deliveries(wh).await;
    let d = ds.first()?;
    Some(app.delivery(d["id"].as_str().unwrap()).await)
}

async fn misbehaving_receivers_affect_only_their_own_delivery(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let healthy = Receiver::start().await;
    let (healthy_wh, _) = app.webhook(&healthy.url("ok")).await;
    let mut hostile = Vec::new();
    for how in [
        Misbehaviour::NulBody,
        Misbehaviour::InvalidUtf8,
        Misbehaviour::EndlessBody,
        Misbehaviour::ClosedMidResponse,
        Misbehaviour::MalformedHeaders,
        Misbehaviour::HugeHeader,
    ] {
        let (url, hits) = raw_receiver(how).await;
        let (wh, _) = app.webhook(&url).await;
        hostile.push((how, wh, hits));
    }
    let events = 5;
    for _ in 0..events {
        app.publish_received().await;
    }
    healthy.wait_for("ok", events).await;
    eventually("every healthy delivery recorded as delivered", || async {
        let ds = app.deliveries(&healthy_wh).await;
        (ds.len() == events && ds.iter().all(|d| d["status"] == "delivered")).then_some(())
    })
    .await;
    for (how, wh, hits) in &hostile {
        // Every attempt is recorded (attempts = 1 on each delivery), whatever came back.
        let ds = eventually("each hostile delivery has its first attempt recorded", || async {
            let ds = app.deliveries(wh).await;
            (ds.len() == events && ds.iter().all(|d| d["attempts"] == 1)).then_some(ds)
        })
        .await;
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), events, "one request per delivery, no re-send");
        let d = first_delivery(&app, wh).await.unwrap();
        let attempt = &d["attempt_log"][0];
        match how {
            Misbehaviour::NulBody => {
                assert!(ds.iter().all(|d| d["status"] == "delivered"));
                assert_eq!(attempt["outcome"], "response");
                let body = attempt["response_body"].as_str().unwrap();
                assert!(body.starts_with("abc") && body.contains("def") && !body.contains('\0'), "{body:?}");
            }
            Misbehaviour::InvalidUtf8 => {
                assert!(ds.iter().all(|d| d["status"] == "pending" && d["last_status_code"] == 500));
                assert!(attempt["response_body"].as_str().unwrap().contains("bad"));
            }
            Misbehaviour::EndlessBody => {
                assert!(ds.iter().all(|d| d["status"] == "delivered"));
                assert_eq!(attempt["response_body"].as_str().unwrap().len(), 4096);
            }
            Misbehaviour::ClosedMidResponse => {
                // The receiver said 200 before hanging up: that is its answer.
                assert!(ds.iter().all(|d| d["status"] == "delivered"));
                assert_eq!(attempt["status_code"], 200, "{attempt}");
            }
            Misbehaviour::MalformedHeaders | Misbehaviour::HugeHeader => {
                assert!(ds.iter().all(|d| d["status"] == "pending"));
                assert_eq!(attempt["status_code"], 0, "{attempt}");
                assert_eq!(attempt["outcome"], "protocol_error", "{attempt}");
                assert!(attempt["error"].as_str().is_some_and(|e| !e.is_empty()));
            }
        }
    }
    // The API still answers for all of it, and nothing was re-sent to the healthy receiver.
    assert_eq!(healthy.received("ok").len(), events);
    let (s, _) = app.call(reqwest::Method::GET, "/api/v1/events?limit=100", None).await;
    assert_eq!(s, 200);
}

on_both_stores!(misbehaving_receivers_affect_only_their_own_delivery);

/// A receiver that closes an idle keep-alive connection just as Herald sends on it (its
/// keep-alive timeout racing Herald's pool, as with Node's 5 s default), with a FIN or with a
/// reset: the request goes out again on a new connection in the same attempt, and no delivery
/// fails for it.
#[tokio::test]
async fn a_pooled_connection_closed_by_the_receiver_fails_no_attempt() {
    for reset in [false, true] {
        pooled_connection_closed_under_a_request(reset).await;
    }
}

async fn pooled_connection_closed_under_a_request(reset: bool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    // On each connection the first request is answered (keep-alive); a second one is read and
    // the connection closed (or reset) without an answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (answered, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, d) = (answered.clone(), dropped.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (a, d) = (a.clone(), d.clone());
            tokio::spawn(async move {
                if read_request(&mut sock).await.is_none() {
                    return;
                }
                a.fetch_add(1, SeqCst);
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                if read_request(&mut sock).await.is_some() {
                    d.fetch_add(1, SeqCst);
                    if reset {
                        // Closing with linger 0 sends a RST instead of a FIN.
                        sock.set_zero_linger().unwrap();
                    }
                }
            });
        }
    });
    let app = spawn_app().await;
    let (wh, _) = app.webhook(&format!("http://{addr}/")).await;
    for n in 1..=3 {
        app.publish_received().await;
        eventually(&format!("{n} deliveries delivered (reset: {reset})"), || async {
            let ds = app.deliveries(&wh).await;
            (ds.len() == n && ds.iter().all(|d| d["status"] == "delivered")).then_some(())
        })
        .await;
    }
    // Each later event went out first on the connection the one before left idle.
    assert!(dropped.load(SeqCst) >= 1, "the race was exercised (reset: {reset})");
    assert_eq!(answered.load(SeqCst), 3, "one answered request per event");
    for d in app.deliveries(&wh).await {
        assert_eq!(d["attempts"], 1, "no failed attempt (reset: {reset}): {d}");
    }
    app.stop().await;
}
