//! A loopback HTTP/1.1 proxy in front of LocalStack that can delay, stall, fail, drop or rewrite
//! requests, chosen per request by a rule. One connection per request (`Connection: close`), so
//! every request passes through the rule.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the rule sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/bucket/key?partNumber=2&uploadId=...`.
    pub target: String,
    /// How many requests came before this one.
    pub seq: u64,
    /// Header lines as sent, names lower-cased (`x-amz-checksum-sha256: …`).
    pub headers: Vec<String>,
}

impl Request {
    /// Whether the request carries any of the newer checksum headers or an `aws-chunked` body,
    /// which several S3-compatible stores reject.
    pub fn has_new_checksums(&self) -> bool {
        self.headers.iter().any(|h| {
            (h.starts_with("x-amz-checksum-") && !h.starts_with("x-amz-checksum-mode"))
                || h.starts_with("x-amz-sdk-checksum-algorithm")
                || h.starts_with("x-amz-trailer")
                || (h.starts_with("content-encoding:") && h.contains("aws-chunked"))
        })
    }

    pub fn is_upload_part(&self) -> bool {
        self.method == "PUT" && self.target.contains("partNumber=") && !self.target.contains("x-amz-copy-source")
    }
}

/// What to do with a request.
#[derive(Debug, Clone)]
pub enum Verdict {
    Forward,
    /// Wait, then forward.
    Delay(Duration),
    /// Hold the connection open without answering until the proxy is released, then close it:
    /// the request never reaches the store (as when the client dies mid-request).
    Stall,
    /// Answer with this status and S3 error code, without forwarding.
    Fail(u16, &'static str),
    /// Answer with this status, S3 error code and message, without forwarding.
    FailWith(u16, &'static str, String),
    /// Close the connection without answering.
    Drop,
    /// Forward, then cut the response body after this many bytes.
    Truncate(usize),
    /// Forward, then replace the value of a response header.
    RewriteHeader(&'static str, String),
    /// Forward without the request headers of these (lower-case) names: a store that ignores
    /// them, as one without conditional writes ignores `if-none-match` and `if-match`.
    ForwardWithout(&'static [&'static str]),
    /// Forward, then flip one byte in the middle of the response body (a corruption on the way).
    Corrupt,
}

type Rule = Arc<dyn Fn(&Request) -> Verdict + Send + Sync>;

pub struct Proxy {
    pub endpoint: String,
    rule: Arc<Mutex<Rule>>,
    released: Arc<AtomicBool>,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`) that forwards everything.
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(Arc::new(|_: &Request| Verdict::Forward)));
        let released = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seq = Arc::new(AtomicU64::new(0));
        let (r, rel, reqs) = (rule.clone(), released.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (r, rel, reqs, up, seq) = (r.clone(), rel.clone(), reqs.clone(), upstream.clone(), seq.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, &r, &rel, &reqs, &seq);
                });
            }
        });
        Proxy { endpoint, rule, released, requests }
    }

    /// Replaces the rule.
    pub fn set_rule(&self, rule: impl Fn(&Request) -> Verdict + Send + Sync + 'static) {
        *self.rule.lock().unwrap() = Arc::new(rule);
    }

    /// Ends stalled requests (their connections are closed; nothing is forwarded).
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Requests seen so far matching `pred`.
    pub fn count(&self, pred: impl Fn(&Request) -> bool) -> usize {
        self.requests.lock().unwrap().iter().filter(|r| pred(r)).count()
    }
}

fn handle(
    mut client: TcpStream,
    upstream: &str,
    rule: &Mutex<Rule>,
    released: &AtomicBool,
    requests: &Mutex<Vec<Request>>,
    seq: &AtomicU64,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let done = line == "\r\n";
        head.push(line);
        if done {
            break;
        }
    }
    let first: Vec<&str> = head[0].split_whitespace().collect();
    let req = Request {
        method: first[0].to_string(),
        target: first.get(1).unwrap_or(&"").to_string(),
        seq: seq.fetch_add(1, Ordering::SeqCst),
        headers: head[1..].iter().map(|h| h.trim_end().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect(),
    };
    let len: usize = head
        .iter()
        .find_map(|h| h.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    requests.lock().unwrap().push(req.clone());
    let verdict = (rule.lock().unwrap().clone())(&req);
    match &verdict {
        Verdict::Delay(d) => std::thread::sleep(*d),
        Verdict::Stall => {
            while !released.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Verdict::Fail(_, _) | Verdict::FailWith(_, _, _) => {
            let (status, code, message) = match &verdict {
                Verdict::Fail(s, c) => (*s, *c, "injected by the test proxy".to_string()),
                Verdict::FailWith(s, c, m) => (*s, *c, m.clone()),
                _ => unreachable!(),
            };
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
            write!(
                client,
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        Verdict::Drop => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        _ => {}
    }
    let mut up = TcpStream::connect(upstream)?;
    for h in &head {
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") || lower.starts_with("expect:") {
            continue;
        }
        if let Verdict::ForwardWithout(names) = &verdict
            && names.iter().any(|n| lower.split_once(':').is_some_and(|(name, _)| name.trim() == *n))
        {
            continue;
        }
        if h == "\r\n" {
            up.write_all(b"Connection: close\r\n\r\n")?;
        } else {
            up.write_all(h.as_bytes())?;
        }
    }
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    // Skip interim 1xx responses.
    while resp.starts_with(b"HTTP/1.1 1") {
        let end = resp.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(resp.len());
        resp.drain(..end);
    }
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(resp.len());
    let (rhead, rbody) = resp.split_at(split);
    let mut lines: Vec<String> = String::from_utf8_lossy(rhead)
        .lines()
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(str::to_string)
        .collect();
    lines.push("Connection: close".into());
    if let Verdict::RewriteHeader(name, value) = &verdict {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        lines.retain(|l| !l.to_ascii_lowercase().starts_with(&prefix));
        lines.push(format!("{name}: {value}"));
    }
    let rhead = lines.join("\r\n") + "\r\n\r\n";
    client.write_all(rhead.as_bytes())?;
    match verdict {
        Verdict::Corrupt if !rbody.is_empty() => {
            let mut body = rbody.to_vec();
            let mid = body.len() / 2;
            body[mid] ^= 0x5a;
            client.write_all(&body)?;
        }
        Verdict::Truncate(n) => {
            client.write_all(&rbody[..n.min(rbody.len())])?;
            let _ = client.shutdown(Shutdown::Both);
        }
        _ => client.write_all(rbody)?,
    }
    Ok(())
}

/// A rule that answers as stores rejecting the newer checksum headers do (some MinIO, Ceph,
/// B2 and R2 versions): `InvalidArgument: Unsupported header 'x-amz-checksum-…'`.
pub fn strict_checksums(r: &Request) -> Verdict {
    if r.has_new_checksums() {
        let name = r
            .headers
            .iter()
            .find(|h| {
                (h.starts_with("x-amz-checksum-") && !h.starts_with("x-amz-checksum-mode")) || h.starts_with("x-amz-sdk-checksum-algorithm")
            })
            .and_then(|h| h.split(':').next())
            .unwrap_or("x-amz-checksum-crc32")
            .to_string();
        Verdict::FailWith(400, "InvalidArgument", format!("Unsupported header '{name}' received for this API call."))
    } else {
        Verdict::Forward
    }
}
