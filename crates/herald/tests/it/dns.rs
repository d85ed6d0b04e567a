//! `HERALD_DNS_SERVER`: every lookup goes to the configured server — here a DNS server on
//! loopback made by the test, never public DNS.

use crate::support::*;
use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::A;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A UDP DNS server on 127.0.0.1 answering A queries for `name` with 127.0.0.1 (NXDOMAIN
/// otherwise); counts the queries it answered for `name`.
async fn loopback_dns(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else { return };
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
            answer.metadata.message_type = MessageType::Response;
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            for q in &query.queries {
                answer.add_query(q.clone());
                let wanted = q.name().to_ascii().trim_end_matches('.').eq_ignore_ascii_case(name);
                if wanted {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if q.query_type() == RecordType::A {
                        let rdata = RData::A(A(Ipv4Addr::LOCALHOST));
                        answer.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
                    }
                } else {
                    answer.metadata.response_code = ResponseCode::NXDomain;
                }
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    (addr, asked)
}

#[tokio::test]
async fn lookups_go_to_the_configured_dns_server() {
    let (dns, asked) = loopback_dns("hooks.herald-test").await;
    let rx = Receiver::start().await;
    let app =
        spawn_app_with(Options { tweak: Box::new(move |s| s.dns_server = Some(dns)), ..Default::default() }).await;
    let url = format!("http://hooks.herald-test:{}/dns", rx.addr.port());
    app.create_webhook(json!({"url": url, "events": ["email.received"]})).await;
    app.publish_received().await;
    rx.wait_for("dns", 1).await;
    assert!(asked.load(Ordering::SeqCst) >= 1, "the name was resolved by the configured server");
    let unknown = json!({"url": "http://nowhere.herald-test/x", "events": ["email.received"]});
    let (s, v) = app.call(reqwest::Method::POST, "/api/v1/webhooks", Some(unknown)).await;
    assert_eq!(s, 400, "a name the server does not know is refused: {v}");
}
