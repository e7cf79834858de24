//! The HTTP messages inside WARC request and response records: built from what a capture
//! holds, and parsed back, bodies decoded as a browser would see them.

use std::io::Read;

use url::Url;

/// Header fields that describe how a body travelled, not what it is. vaultkeep keeps bodies
/// decoded, so a WARC block carries the body as stored: these go, and `Content-Length` is made
/// to fit (the warcinfo record says so).
const TRAVEL: [&str; 2] = ["content-encoding", "transfer-encoding"];

/// A GET request for `url`, as vaultkeep sends it (it does not keep the headers it sent).
pub fn request_block(url: &Url, user_agent: &str) -> Vec<u8> {
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut host = url.host_str().unwrap_or("").to_string();
    if let Some(port) = url.port() {
        host.push_str(&format!(":{port}"));
    }
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// The status line and headers of a response whose body, `body_len` bytes, is stored
/// decoded: the headers as received, less those that described the transfer, and a
/// `Content-Length` that fits the body.
pub fn response_head(status: u16, headers: &[(String, String)], body_len: Option<u64>) -> Vec<u8> {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    let mut length_said = false;
    for (k, v) in headers {
        let name = k.to_ascii_lowercase();
        if TRAVEL.contains(&name.as_str()) {
            continue;
        }
        if name == "content-length" {
            // Kept in its place, with the stored body's length.
            if let Some(n) = body_len {
                head.push_str(&format!("{k}: {n}\r\n"));
                length_said = true;
            }
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let (Some(n), false) = (body_len, length_said) {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Its status.
    pub status: u16,
    /// Its headers, as they came, except the ones that described the transfer.
    pub headers: Vec<(String, String)>,
    /// Its body, de-chunked and decompressed.
    pub body: Vec<u8>,
}

/// Parses a response block (`HTTP/1.x 200 OK`, headers, body). Bodies sent chunked or
/// compressed (wget keeps them as they travelled) are decoded, up to `max_body` bytes.
pub fn parse_response(block: &[u8], max_body: u64) -> Result<Response, String> {
    let head_end = find(block, b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| find(block, b"\n\n").map(|i| (i, i + 2)))
        .ok_or("no end of the HTTP headers")?;
    let head = String::from_utf8_lossy(&block[..head_end.0]);
    let mut lines = head.lines();
    let status_line = lines.next().ok_or("no status line")?;
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") {
        return Err(format!("not an HTTP response: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {status_line:?}"))?;
    let mut all = Vec::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            all.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        all.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let mut body = block[head_end.1..].to_vec();
    let mut decoded = false;
    if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        body = dechunk(&body)?;
        decoded = true;
    }
    if let Some(encoding) = get("content-encoding").filter(|e| e.trim() != "identity") {
        body = decompress(&body, encoding.trim(), max_body)?;
        decoded = true;
    }
    // How it travelled goes; a length that no longer fits the decoded body goes too.
    let headers = all
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !(TRAVEL.contains(&k.as_str()) || decoded && k == "content-length")
        })
        .collect();
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body, joined.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(rest.len());
    loop {
        let line_end = find(rest, b"\r\n").ok_or("a chunk without its size line")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size {
            return Err("a chunk cut short".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
}

/// A compressed body, decompressed (`gzip`, `deflate`, `br`), at most `max` bytes.
fn decompress(body: &[u8], encoding: &str, max: u64) -> Result<Vec<u8>, String> {
    let reader: Box<dyn Read + '_> = match encoding {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(body)),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(body)),
        "br" => Box::new(brotli::Decompressor::new(body, 64 * 1024)),
        "identity" | "" => return Ok(body.to_vec()),
        other => return Err(format!("unknown Content-Encoding {other:?}")),
    };
    let mut out = Vec::new();
    reader
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress the {encoding} body: {e}"))?;
    if out.len() as u64 > max {
        return Err(format!("the decompressed body is larger than {max} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_stored_body_gets_headers_that_fit_it() {
        let headers = vec![
            ("Content-Type".to_string(), "text/css".to_string()),
            ("Content-Encoding".to_string(), "gzip".to_string()),
            ("Content-Length".to_string(), "12".to_string()),
        ];
        let head = String::from_utf8(response_head(200, &headers, Some(40))).unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/css\r\nContent-Length: 40\r\n\r\n"
        );
        let plain = String::from_utf8(response_head(204, &[], Some(0))).unwrap();
        assert_eq!(
            plain,
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn chunked_and_gzipped_bodies_are_decoded() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"hello, archive").unwrap();
        let zipped = gz.finish().unwrap();
        let mut chunked = Vec::new();
        for part in zipped.chunks(7) {
            chunked.extend(format!("{:x}\r\n", part.len()).into_bytes());
            chunked.extend_from_slice(part);
            chunked.extend(b"\r\n");
        }
        chunked.extend(b"0\r\n\r\n");
        let mut block = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        block.extend(chunked);
        let r = parse_response(&block, 1000).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello, archive");
        assert_eq!(
            r.headers,
            vec![("Content-Type".into(), "text/plain".into())]
        );
        assert!(parse_response(&block, 5).is_err(), "bounded");
    }

    #[test]
    fn a_request_names_the_path_query_and_host() {
        let url = Url::parse("http://127.0.0.1:8080/a b?x=1").unwrap();
        let block = String::from_utf8(request_block(&url, "ua")).unwrap();
        assert!(block.starts_with("GET /a%20b?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
    }
}
