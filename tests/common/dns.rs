//! A DNS server for tests, on UDP 127.0.0.1:53 inside a test's own network namespace, that
//! answers by name: an address, "no such domain" (NXDOMAIN) or "server failure" (SERVFAIL).
//! With `/etc/resolv.conf` pointed at it, the system resolver (getaddrinfo) gives vaultkeep
//! real answers of each kind.

use std::net::UdpSocket;

/// What the server says about a name.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// An A record (and no AAAA).
    Address([u8; 4]),
    /// NXDOMAIN.
    NoSuchDomain,
    /// SERVFAIL: the resolver cannot say now.
    ServerFailure,
}

/// Starts answering on 127.0.0.1:53 in a thread; `answer` is asked for each query name
/// (lowercase, without the final dot).
pub fn serve(answer: impl Fn(&str) -> Answer + Send + 'static) {
    let socket = UdpSocket::bind("127.0.0.1:53").unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if let Some(reply) = reply(&buf[..n], &answer) {
                let _ = socket.send_to(&reply, from);
            }
        }
    });
}

fn reply(query: &[u8], answer: &dyn Fn(&str) -> Answer) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question = &query[12..at + 4];
    let name = labels.join(".");
    let (rcode, record) = match answer(&name) {
        Answer::Address(ip) if qtype == 1 => (0u8, Some(ip)),
        Answer::Address(_) => (0, None),
        Answer::NoSuchDomain => (3, None),
        Answer::ServerFailure => (2, None),
    };
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[0..2]); // id
    out.push(0x80 | (query[2] & 0x01)); // QR, RD copied
    out.push(0x80 | rcode); // RA, rcode
    out.extend_from_slice(&1u16.to_be_bytes()); // one question
    out.extend_from_slice(&u16::from(record.is_some()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    if let Some(ip) = record {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&ip);
    }
    Some(out)
}
