//! A real HTTP/1.1 server on 127.0.0.1 for tests: static folders, or a handler per request
//! (redirects, slow or endless answers, compressed bodies, rate limits).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: HashMap<String, String>,
}

impl Request {
    /// The path without the query, percent-decoded.
    pub fn path(&self) -> String {
        let raw = self.target.split('?').next().unwrap_or("/");
        percent_decode(raw)
    }
}

/// What the server answers.
pub enum Reply {
    /// A complete response.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Never answer (until the server stops).
    Hang,
    /// Headers, then an endless body.
    Endless,
    /// These bytes as they are (a malformed or HTTP/1.0 answer), then the connection closes.
    Raw(Vec<u8>),
    /// These bytes, one at a time, `every` apart.
    Drip { bytes: Vec<u8>, every: Duration },
    /// A complete response whose body takes `over` to arrive, in ten pieces.
    Slow {
        content_type: String,
        body: Vec<u8>,
        over: Duration,
    },
}

impl Reply {
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: format!("<h1>{status}</h1>").into_bytes(),
        }
    }

    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    /// Every request target, in order.
    pub hits: Arc<Mutex<Vec<String>>>,
    /// Requests being answered now, and the most at once.
    pub active: Arc<AtomicUsize>,
    pub peak: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `handler` on 127.0.0.1 (a free port).
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::start_on("127.0.0.1:0", handler)
    }

    /// Serves `handler` on `addr` (inside a test's network namespace, a public-looking one).
    pub fn start_on(
        addr: &str,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, h, a, p) = (stop.clone(), hits.clone(), active.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (handler, stop, hits) = (handler.clone(), s.clone(), h.clone());
                let (active, peak) = (a.clone(), p.clone());
                std::thread::spawn(move || {
                    let counts = Counts {
                        active: &active,
                        peak: &peak,
                    };
                    serve(conn, &*handler, &stop, &hits, counts);
                });
            }
        });
        Server {
            addr,
            hits,
            active,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Serves the files of a folder; missing files are 404.
    pub fn dir(root: PathBuf) -> Server {
        Server::start(move |req| static_file(&root, req))
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests asked for `target`.
    pub fn count(&self, target: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == target)
            .count()
    }
}

/// A port that refuses connections and that no other test can take: bound, never listening.
pub struct Refusing(#[allow(dead_code)] socket2::Socket);

impl Server {
    /// Stops the server and keeps its port refusing connections (a dropped server's port
    /// could be taken by another test's server and answer).
    pub fn refuse(self) -> Refusing {
        let addr = self.addr;
        drop(self);
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        // Connections the server had open hold the port for a moment after it stops.
        let started = std::time::Instant::now();
        while let Err(e) = socket.bind(&addr.into()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{addr} taken before it could be held: {e}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Refusing(socket)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A file of `root` for the request, with a content type by extension.
pub fn static_file(root: &std::path::Path, req: &Request) -> Reply {
    let mut path = root.join(req.path().trim_start_matches('/'));
    if path.is_dir() {
        path = path.join("index.html");
    }
    match std::fs::read(&path) {
        Ok(body) => Reply::ok(content_type(&path.to_string_lossy()), body),
        Err(_) => Reply::status(404),
    }
}

pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "eot" => "application/vnd.ms-fontobject",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "ico" => "image/x-icon",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// The server's count of requests being answered, and the most at once.
struct Counts<'a> {
    active: &'a AtomicUsize,
    peak: &'a AtomicUsize,
}

/// One request being answered, until dropped.
struct Answering<'a>(&'a AtomicUsize);

impl Counts<'_> {
    fn start(&self) -> Answering<'_> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Answering(self.active)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(
    conn: TcpStream,
    handler: &Handler,
    stop: &AtomicBool,
    hits: &Mutex<Vec<String>>,
    counts: Counts<'_>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if let Some(len) = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
    }
    hits.lock().unwrap().push(target.clone());
    let mut answering = Some(counts.start());
    let req = Request {
        method,
        target,
        headers,
    };
    let mut conn = conn;
    match handler(&req) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            let _ = conn.write_all(head.as_bytes());
            if req.method != "HEAD" {
                let _ = conn.write_all(&body);
            }
        }
        Reply::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Reply::Raw(bytes) => {
            let _ = conn.write_all(&bytes);
        }
        Reply::Drip { bytes, every } => {
            for b in bytes {
                if stop.load(Ordering::SeqCst) || conn.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(every);
            }
        }
        Reply::Slow {
            content_type,
            body,
            over,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let piece = body.len().div_ceil(10).max(1);
            let last = body.len().saturating_sub(1) / piece;
            for (i, chunk) in body.chunks(piece).enumerate() {
                std::thread::sleep(over / 10);
                if i == last {
                    // Answered once the last bytes are on their way: the client may start
                    // another request the moment it has them, before this thread runs again.
                    answering.take();
                }
                if conn.write_all(chunk).is_err() {
                    break;
                }
            }
        }
        Reply::Endless => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n");
            let chunk = vec![b'x'; 64 * 1024];
            while !stop.load(Ordering::SeqCst) && conn.write_all(&chunk).is_ok() {}
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
