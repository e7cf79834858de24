//! SURT keys ("Sort-friendly URI Reordering Transform"), the sort order of CDXJ indexes:
//! `https://www.Example.com/A?b=2&a=1` becomes `com,example)/a?a=1&b=2`. Replay tools look
//! URLs up by this key, so it follows the Internet Archive's `surt` package, whose answers are
//! the tests' oracle.

use url::{Host, Url};

/// The SURT key of `url`.
pub fn surt(url: &Url) -> String {
    let mut key = match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            let d = strip_www(&d);
            d.split('.').rev().collect::<Vec<_>>().join(",")
        }
        Some(Host::Ipv4(ip)) => ip
            .octets()
            .iter()
            .rev()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        None => String::new(),
    };
    if let Some(port) = url.port() {
        key.push_str(&format!(":{port}"));
    }
    key.push(')');
    let path = unescape(url.path()).to_lowercase();
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    // A directory and its index are one key (`/a/` is `/a`); the root stays `/`.
    if collapsed.len() > 1 && collapsed.ends_with('/') {
        collapsed.pop();
    }
    key.push_str(&collapsed);
    if let Some(q) = url.query().filter(|q| !q.is_empty()) {
        let mut params: Vec<String> = q.split('&').map(str::to_lowercase).collect();
        params.sort();
        key.push('?');
        key.push_str(&params.join("&"));
    }
    key
}

/// `www.`, `www2.`...: the same site, for a key.
fn strip_www(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix("www")
        && let Some(dot) = rest.find('.')
        && rest[..dot].chars().all(|c| c.is_ascii_digit())
    {
        return &rest[dot + 1..];
    }
    host
}

/// Decodes the escapes that name the same resource written plainly (`%7E` is `~`, `%2F` is
/// `/`); others (`%C3%A9`) stay escaped, lower-cased with the rest.
fn unescape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).unwrap_or("");
        let byte = u8::from_str_radix(code, 16).ok();
        match byte {
            Some(b) if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) => {
                out.push(b as char);
                rest = &rest[i + 3..];
            }
            _ => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers of the Internet Archive's `surt` package (0.3.1), the reference.
    #[test]
    fn keys_match_the_reference_implementation() {
        for (url, key) in [
            ("http://www.example.com/", "com,example)/"),
            (
                "https://Example.COM/Path/To?b=2&a=1",
                "com,example)/path/to?a=1&b=2",
            ),
            ("http://127.0.0.1:8799/a.png", "1,0,0,127:8799)/a.png"),
            ("https://x.org:443/a", "org,x)/a"),
            ("http://x.org:80/", "org,x)/"),
            ("https://sub.x.org/a/b.html#frag", "org,x,sub)/a/b.html"),
            ("https://www2.x.org/Caf%C3%A9.png", "org,x)/caf%c3%a9.png"),
            ("https://x.org/?", "org,x)/"),
            (
                "https://x.org/a?jsessionid=1234&b=1",
                "org,x)/a?b=1&jsessionid=1234",
            ),
            ("https://x.org/q.png?v=1&w=2", "org,x)/q.png?v=1&w=2"),
            ("http://[::1]:8080/x", "::1:8080)/x"),
            ("https://X.org/A%2fB", "org,x)/a/b"),
            ("https://x.org/%7Euser", "org,x)/~user"),
            ("https://x.org/a//b", "org,x)/a/b"),
            ("http://example.com/a/b/", "com,example)/a/b"),
            ("http://example.com/a/?q=1", "com,example)/a?q=1"),
            ("http://example.com/a//", "com,example)/a"),
            ("http://example.com", "com,example)/"),
        ] {
            assert_eq!(surt(&Url::parse(url).unwrap()), key, "{url}");
        }
    }
}
