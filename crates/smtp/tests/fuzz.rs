//! Arbitrary bytes (and arbitrary mixes of real commands and bytes) into sessions over a
//! socket: no panic anywhere, and the server keeps answering fresh connections.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{DEADLINE, TestServer, config};
use herald_smtp::SmtpConfig;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Pieces that drive the session through its states.
const PIECES: &[&[u8]] = &[
    b"EHLO fuzz.test\r\n",
    b"HELO fuzz.test\r\n",
    b"MAIL FROM:<a@b.test>\r\n",
    b"MAIL FROM:<> SIZE=99999999999999999999\r\n",
    b"RCPT TO:<alice@example.com>\r\n",
    b"RCPT TO:<temp@example.com>\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT 18446744073709551615 LAST\r\n",
    b"\r\n.\r\n",
    b".\r\n",
    b"\n.\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"STARTTLS\r\n",
    b"VRFY x\r\n",
    b"\0",
    b"\r",
    b"\n",
];

fn input() -> impl Strategy<Value = Vec<u8>> {
    let piece =
        prop_oneof![prop::sample::select(PIECES).prop_map(<[u8]>::to_vec), prop::collection::vec(any::<u8>(), 0..64),];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

async fn feed(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may close early (too many errors): write errors are fine.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut sink)).await;
}

async fn still_serving(server: &TestServer) {
    let mut client = server.client().await;
    client.cmd_expect("NOOP", "250 2.0.0").await;
}

#[test]
fn arbitrary_input_never_breaks_the_server() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start(SmtpConfig {
        max_message_size: 64,
        tls: None,
        idle_timeout: Duration::from_secs(5),
        ..config()
    }));
    proptest!(ProptestConfig::with_cases(128), |(bytes in input())| {
        let before = PANICS.load(Ordering::SeqCst);
        runtime.block_on(async {
            feed(server.addr, &bytes).await;
            still_serving(&server).await;
        });
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), before, "a session panicked");
    });
    // Many sessions at once, each fed different noise.
    runtime.block_on(async {
        let noise: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut sessions = tokio::task::JoinSet::new();
        for i in 0..16 {
            let bytes = noise[i * 1000..i * 1000 + 4000].to_vec();
            let addr = server.addr;
            sessions.spawn(async move { feed(addr, &bytes).await });
        }
        sessions.join_all().await;
        still_serving(&server).await;
    });
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "no panic in any session");
    runtime.block_on(server.stop());
}
