//! The listeners' limits against clients that hold connections without using them.
//! Each test guards against a hole a security review reproduced:
//!
//! - a client that completes the TLS handshake (or connects over plain HTTP) and then
//!   trickles a request line one byte a second was kept for as long as it went on (45 s
//!   and more: hyper had no timer, so no header deadline). It must be closed within the
//!   header timeout, on the HTTPS API and on the plain-HTTP listener;
//! - 20,100 idle connections to the plain-HTTP listener exhausted the node's file
//!   descriptors, and the HTTPS health check timed out. A flood over the plain-HTTP cap
//!   must leave `GET /v1/sys/health` on HTTPS answering within 1 s, the node's
//!   descriptors bounded by the cap, and plain HTTP answering again once it is gone;
//! - an idle keep-alive connection stayed open forever; it must be closed after the
//!   idle timeout;
//! - a body declared larger than the limit was read for up to 64 MiB and 10 s before the
//!   413; the node must read at most about the limit (and linger at most 2 s), while the
//!   client still gets its 413.
//!
//! All traffic goes to 127.0.0.1.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{wait_for, Node};

/// A connection to a listener, over TLS or not.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A plain TCP connection to `port`, whose reads give up after `tick`.
fn tcp(port: u16, tick: Duration) -> TcpStream {
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(tick)).expect("read timeout");
    tcp
}

/// A TLS connection to the node's HTTPS API with the handshake done, whose reads give up
/// after `tick`.
fn tls(node: &Node, tick: Duration) -> Box<dyn Stream> {
    let tcp = TcpStream::connect(("127.0.0.1", node.https)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(node.tls_client_config(), name).expect("TLS client");
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).expect("TLS handshake");
    }
    stream.sock.set_read_timeout(Some(tick)).expect("read timeout");
    Box::new(stream)
}

/// What a read says about the connection: closed (`None`), or the bytes it gave
/// (empty when none came within the read timeout).
fn read_some(stream: &mut dyn Stream) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => None,
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Some(Vec::new()),
        Err(_) => None,
    }
}

/// Sends a request line and headers one byte a second, never finishing them; returns
/// how long the server kept the connection, or `None` if it still did after `give_up`.
fn trickle_headers(stream: &mut dyn Stream, give_up: Duration) -> Option<Duration> {
    let start = Instant::now();
    let head = b"GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if stream.write_all(&[*byte]).and_then(|_| stream.flush()).is_err() {
            return Some(start.elapsed());
        }
        // Read for about a second: the server's answer or its close ends the wait early.
        let tick_end = Instant::now() + Duration::from_secs(1);
        while Instant::now() < tick_end {
            match read_some(stream) {
                None => return Some(start.elapsed()),
                Some(answer) if !answer.is_empty() => {
                    // An answer (say a 408) before the close is fine; the close must follow.
                    continue;
                }
                Some(_) => {}
            }
        }
        if start.elapsed() > give_up {
            return None;
        }
    }
    unreachable!("the byte source is endless")
}

/// Sends one whole request on a keep-alive connection, reads the whole answer, then
/// returns how long the server kept the idle connection, or `None` after `give_up`.
fn idle_after_one_request(stream: &mut dyn Stream, give_up: Duration) -> Option<Duration> {
    stream
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send the request");
    stream.flush().expect("flush");
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !whole_answer(&answer) {
        assert!(
            Instant::now() < deadline,
            "no whole answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
        match read_some(stream) {
            Some(bytes) => answer.extend(bytes),
            None => panic!("closed before answering: {:?}", String::from_utf8_lossy(&answer)),
        }
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let start = Instant::now();
    while start.elapsed() < give_up {
        match read_some(stream) {
            None => return Some(start.elapsed()),
            Some(more) => assert!(more.is_empty(), "unexpected bytes: {more:?}"),
        }
    }
    None
}

/// Whether `bytes` hold an HTTP/1.1 answer's head and its whole `Content-Length` body.
fn whole_answer(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            match name.eq_ignore_ascii_case("content-length") {
                true => value.trim().parse::<usize>().ok(),
                false => None,
            }
        })
        .expect("the answer has a Content-Length");
    body.len() >= length
}

/// Raises this test process's open-file limit to its maximum; returns the soft limit.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only touch the struct they are given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "getrlimit");
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "getrlimit");
        }
    }
    limit.rlim_cur
}

/// `GET /v1/sys/health` on the HTTPS API with a fresh client (handshake included);
/// returns the status and how long it took.
fn https_health(node: &Node) -> (u16, Duration) {
    let client = node.http_client();
    let start = Instant::now();
    let resp = client
        .get(format!("{}/v1/sys/health", node.url()))
        .timeout(Duration::from_secs(5))
        .send()
        .expect("HTTPS health");
    (resp.status().as_u16(), start.elapsed())
}

/// Whether `GET /v1/sys/health` on the plain-HTTP listener gets an answer.
fn http_health_answers(node: &Node) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &format!("127.0.0.1:{}", node.http).parse().expect("address"),
        Duration::from_secs(1),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 ")
}

/// The number of descriptors the node's process has open.
fn open_descriptors(node: &Node) -> usize {
    let pid = node.pid().expect("the node runs");
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_client_that_trickles_its_headers_is_closed_within_the_header_timeout() {
    let node = Node::start_with_config("[limits]\nheader_timeout_secs = 2\nidle_timeout_secs = 1");
    let give_up = Duration::from_secs(12);
    let tick = Duration::from_millis(100);

    let https = trickle_headers(&mut *tls(&node, tick), give_up);
    let http = trickle_headers(&mut tcp(node.http, tick), give_up);
    println!("slow headers closed after: HTTPS {https:?}, plain HTTP {http:?}");
    for (listener, kept) in [("HTTPS API", https), ("plain-HTTP listener", http)] {
        let kept = kept.unwrap_or_else(|| panic!("the {listener} still serves a trickling client after {give_up:?}"));
        // Closed by the 2 s header deadline: not at once, and not much later (the 1 s
        // idle timeout is for connections that sent a request; this one never did).
        assert!(
            kept >= Duration::from_millis(1500) && kept <= Duration::from_secs(4),
            "the {listener} closed a trickling client after {kept:?}, not about 2 s"
        );
    }
    // The node keeps serving.
    assert_eq!(https_health(&node).0, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let node = Node::start_with_config("[limits]\nheader_timeout_secs = 10\nidle_timeout_secs = 2");
    let give_up = Duration::from_secs(12);
    let tick = Duration::from_millis(100);

    let https = idle_after_one_request(&mut *tls(&node, tick), give_up);
    let http = idle_after_one_request(&mut tcp(node.http, tick), give_up);
    println!("idle keep-alive closed after: HTTPS {https:?}, plain HTTP {http:?}");
    for (listener, kept) in [("HTTPS API", https), ("plain-HTTP listener", http)] {
        let kept = kept.unwrap_or_else(|| panic!("the {listener} keeps an idle connection after {give_up:?}"));
        assert!(
            kept >= Duration::from_millis(1500) && kept <= Duration::from_secs(4),
            "the {listener} closed an idle keep-alive connection after {kept:?}, not about 2 s"
        );
    }
}

#[test]
fn a_flood_of_idle_connections_to_plain_http_leaves_https_answering() {
    const FLOOD: usize = 3_000;
    const CAP: usize = 500;
    let own_limit = raise_open_file_limit();
    assert!(
        own_limit > FLOOD as u64 + 200,
        "this test needs {FLOOD} descriptors, it may have {own_limit}"
    );
    // A long header deadline, so that the flood's silent connections are held by the cap
    // for the whole test rather than timed out.
    let node = Node::start_with_config(&format!(
        "[limits]\nheader_timeout_secs = 60\nmax_connections_http = {CAP}"
    ));
    let started = Instant::now();
    let before = open_descriptors(&node);

    let addr = format!("127.0.0.1:{}", node.http).parse().expect("address");
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            flood.push(s);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "opening the flood took too long"
        );
    }
    // Let the node accept (and refuse) what the kernel queued.
    wait_for(
        "the plain-HTTP listener to refuse the excess",
        Duration::from_secs(10),
        || node.log().contains("plain-HTTP listener: refused"),
    );
    let during = open_descriptors(&node);

    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let (status, took) = https_health(&node);
        assert_eq!(status, 200, "HTTPS health during the flood");
        worst = worst.max(took);
    }
    let http_during = http_health_answers(&node);
    println!(
        "flood: {} of {FLOOD} connected; node descriptors {before} before, {during} during; \
         slowest HTTPS health {worst:?}; plain HTTP answered during the flood: {http_during}",
        flood.len()
    );
    assert!(
        worst < Duration::from_secs(1),
        "HTTPS health took {worst:?} during the flood"
    );
    assert!(
        during <= before + CAP + 50,
        "the node holds {during} descriptors during the flood ({before} before): the cap of {CAP} does not hold"
    );
    assert!(!http_during, "the plain-HTTP listener answered over its cap of {CAP}");

    for s in &flood {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(flood);
    let closed = Instant::now();
    wait_for("plain HTTP to answer after the flood", Duration::from_secs(10), || {
        http_health_answers(&node)
    });
    println!(
        "plain HTTP answered again {:?} after the flood closed",
        closed.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the flood test took {:?}",
        started.elapsed()
    );
}

/// Sends `POST /v1/certs` declaring a `length`-byte body over TLS and writes the body as
/// fast as the node takes it, until the node stops taking it for `stall` or closes; then
/// reads the answer. Returns the bytes the socket took and the answer's start.
fn send_huge_body(node: &Node, length: usize, stall: Duration) -> (usize, String) {
    let mut sock = TcpStream::connect(("127.0.0.1", node.https)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("server name");
    let mut conn = rustls::ClientConnection::new(node.tls_client_config(), name).expect("TLS client");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake");
    }
    sock.set_write_timeout(Some(stall)).expect("write timeout");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let head = format!(
        "POST /v1/certs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    conn.writer().write_all(head.as_bytes()).expect("buffer the head");
    let chunk = vec![b'A'; 16 * 1024];
    let (mut queued, mut taken) = (0usize, 0usize);
    'send: loop {
        while conn.wants_write() {
            match conn.write_tls(&mut sock) {
                Ok(n) => taken += n,
                Err(_) => break 'send,
            }
        }
        if queued >= length {
            break;
        }
        conn.writer().write_all(&chunk).expect("buffer the body");
        queued += chunk.len();
    }
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read_tls(&mut sock) {
            Ok(0) => break,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    break;
                }
                let _ = conn.reader().read_to_end(&mut answer);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (taken, answer)
}

#[test]
fn a_refused_oversized_body_is_read_for_at_most_the_body_limit() {
    // A dev node: the body limit is 1 MiB.
    let node = Node::start();
    let start = Instant::now();
    let (taken, answer) = send_huge_body(&node, 64 << 20, Duration::from_millis(500));
    let took = start.elapsed();
    println!("64 MiB body refused: the socket took {taken} bytes in {took:?}; answer {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(taken < 24 << 20, "the node took {taken} bytes of a refused 64 MiB body");
}
