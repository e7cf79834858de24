//! robots.txt (RFC 9309), fetched once per origin and obeyed for every request to it.
//!
//! Read up to 500 KiB, as Google does; what follows is ignored. The rules are kept as plain
//! strings and matched with the RFC's `*` and `$` patterns (longest match wins, `allow` wins a
//! tie), so memory is the size of the text and a check costs a scan of the rules: a hostile
//! file of a hundred thousand rules cannot balloon the process (issue 8). The crate this
//! replaced compiled a regular expression per rule (130 MB for 500 KiB of rules); its answers
//! serve as the oracle in the tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use url::Url;

use super::Fetcher;

/// The product token robots.txt rules name.
const AGENT: &str = "vaultkeep";

/// Longest `Crawl-delay` honoured.
const MAX_CRAWL_DELAY: Duration = Duration::from_secs(5);

/// Bytes of robots.txt read; the rest is ignored (RFC 9309 asks for at least 500 KiB).
pub(super) const MAX_ROBOTS_BYTES: u64 = 500 * 1024;

/// Parsed robots.txt files by origin; `None` means everything is allowed.
#[derive(Default)]
pub(super) struct Cache {
    origins: tokio::sync::Mutex<HashMap<String, Arc<OnceCell<Option<Robots>>>>>,
}

impl Cache {
    /// Whether robots.txt of the URL's origin allows fetching it.
    pub(super) async fn allows(&self, fetcher: &Fetcher, url: &Url) -> bool {
        let origin = url.origin().ascii_serialization();
        let cell = self.origins.lock().await.entry(origin).or_default().clone();
        let robots = cell.get_or_init(|| load(fetcher, url)).await;
        robots.as_ref().is_none_or(|r| r.allows(&path_of(url)))
    }
}

/// The path and query of a URL, as robots.txt rules see it.
fn path_of(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Fetches and parses robots.txt. Missing (4xx) or unreachable: everything is allowed, as
/// crawlers commonly do; a `Crawl-delay` slows requests to the host.
async fn load(fetcher: &Fetcher, url: &Url) -> Option<Robots> {
    let robots_url = url.join("/robots.txt").ok()?;
    match fetcher.fetch_robots(&robots_url).await {
        Ok(body) => {
            let robots = Robots::parse(&String::from_utf8_lossy(&body), AGENT);
            if let Some(delay) = robots.delay {
                fetcher.gate(url).raise_interval(delay);
            }
            Some(robots)
        }
        Err(super::Failure::Http { status }) => {
            tracing::debug!(%robots_url, status, "no robots.txt");
            None
        }
        Err(e) => {
            tracing::info!(%robots_url, "cannot fetch robots.txt ({e}); proceeding");
            None
        }
    }
}

/// The rules of robots.txt that apply to one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Robots {
    /// `(allow, pattern)`, in file order, patterns normalized.
    rules: Vec<(bool, String)>,
    /// The group's `Crawl-delay`, capped.
    pub(super) delay: Option<Duration>,
}

impl Robots {
    /// The rules for `agent`: the groups that name it (case-insensitively, by product
    /// token), else the `*` groups. Lines that are not rules are ignored.
    pub(super) fn parse(text: &str, agent: &str) -> Robots {
        let agent = agent.to_ascii_lowercase();
        let mut mine = Robots::default();
        let mut star = Robots::default();
        let mut found_mine = false;
        // The agents of the group being read, and whether its rules have started (a
        // user-agent line after rules starts a new group).
        let mut agents: Vec<String> = Vec::new();
        let mut in_rules = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if in_rules {
                        agents.clear();
                        in_rules = false;
                    }
                    agents.push(value.to_ascii_lowercase());
                }
                "allow" | "disallow" | "crawl-delay" => {
                    in_rules = true;
                    let for_me = agents.iter().any(|a| a == &agent);
                    let for_all = agents.iter().any(|a| a == "*");
                    found_mine |= for_me;
                    let target = if for_me {
                        &mut mine
                    } else if for_all {
                        &mut star
                    } else {
                        continue;
                    };
                    if key == "crawl-delay" {
                        target.delay = value
                            .parse::<f64>()
                            .ok()
                            .filter(|d| d.is_finite() && *d > 0.0)
                            .map(|d| Duration::from_secs_f64(d.min(MAX_CRAWL_DELAY.as_secs_f64())));
                    } else if !value.is_empty() {
                        target.rules.push((key == "allow", normalize(value)));
                    }
                }
                _ => {}
            }
        }
        if found_mine { mine } else { star }
    }

    /// Whether `path` (with its query) may be fetched: the longest matching rule decides,
    /// `allow` winning a tie; no match allows. `/robots.txt` is always allowed.
    pub(super) fn allows(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return true;
        }
        let path = normalize(path);
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if matches(pattern.as_bytes(), path.as_bytes()) {
                let len = pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// Percent-encoding made uniform, so `/caf%c3%a9` and `/café` compare equal: unreserved and
/// non-ASCII bytes decoded, hex digits upper-cased otherwise.
fn normalize(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || b >= 0x80 {
                out.push(b);
            } else {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a rule's pattern matches the start of `path`: `*` matches any run of bytes, a
/// final `$` anchors the end. Greedy matching with backtracking over the last `*` only, which
/// is linear for these patterns.
fn matches(pattern: &[u8], path: &[u8]) -> bool {
    let (pattern, anchored) = match pattern.split_last() {
        Some((b'$', rest)) => (rest, true),
        _ => (pattern, false),
    };
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p == pattern.len() {
            if !anchored || s == path.len() {
                return true;
            }
        } else if pattern[p] == b'*' {
            star = Some((p, s));
            p += 1;
            continue;
        } else if s < path.len() && pattern[p] == path[s] {
            p += 1;
            s += 1;
            continue;
        }
        // Mismatch (or an anchored end not reached): let the last `*` take one more byte.
        match star {
            Some((sp, ss)) if ss < path.len() => {
                star = Some((sp, ss + 1));
                p = sp + 1;
                s = ss + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "# a real-world shape
User-agent: Googlebot
Disallow: /nogoogle/

User-agent: *
Disallow: /private/
Disallow: /*.pdf$
Allow: /private/public-*
Disallow: /search?
Crawl-delay: 2

User-agent: VaultKeep
User-agent: other
Disallow: /just-us/
Allow: /just-us/but-this
";

    /// texting_robots, the crate vaultkeep used before, as an independent oracle.
    fn oracle(text: &str, agent: &str, path: &str) -> bool {
        texting_robots::Robot::new(agent, text.as_bytes())
            .unwrap()
            .allowed(&format!("https://x.org{path}"))
    }

    #[test]
    fn answers_agree_with_the_oracle() {
        let paths = [
            "/",
            "/private/x",
            "/private/public-doc",
            "/a.pdf",
            "/a.pdf?x",
            "/search?q=1",
            "/search",
            "/just-us/",
            "/just-us/but-this",
            "/nogoogle/x",
            "/robots.txt",
            "/caf%C3%A9",
        ];
        for agent in ["vaultkeep", "somebot", "Googlebot"] {
            let ours = Robots::parse(REAL, agent);
            for path in paths {
                assert_eq!(
                    ours.allows(path),
                    oracle(REAL, agent, path),
                    "{agent} {path}"
                );
            }
        }
    }

    #[test]
    fn a_group_naming_us_wins_over_the_star_group() {
        let r = Robots::parse(REAL, "vaultkeep");
        assert!(!r.allows("/just-us/x"));
        assert!(r.allows("/private/x"), "the * group does not apply");
        assert_eq!(r.delay, None);
        let star = Robots::parse(REAL, "somebot");
        assert_eq!(star.delay, Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_huge_delay_is_capped_and_a_silly_one_ignored() {
        let r = Robots::parse("User-agent: *\nCrawl-delay: 1e20\n", AGENT);
        assert_eq!(r.delay, Some(MAX_CRAWL_DELAY));
        for bad in ["NaN", "-1", "inf", "soon"] {
            let r = Robots::parse(&format!("User-agent: *\nCrawl-delay: {bad}\n"), AGENT);
            assert_eq!(r.delay, None, "{bad}");
        }
    }

    #[test]
    fn wildcards_and_anchors_match_like_the_rfc_says() {
        assert!(matches(b"/a*b$", b"/a/x/b"));
        assert!(!matches(b"/a*b$", b"/a/x/bc"));
        assert!(matches(b"/a*b", b"/a/x/bc"));
        assert!(matches(b"*", b"/anything"));
        assert!(matches(b"/$", b"/"));
        assert!(!matches(b"/$", b"/x"));
        assert!(matches(b"/*/*/*.html", b"/a/b/c.html"));
    }

    #[test]
    fn a_file_of_many_rules_stays_small_and_quick() {
        let mut text = String::from("User-agent: *\n");
        for i in 0..15_000 {
            text.push_str(&format!("Disallow: /path/number/{i}/*.html$\n"));
        }
        let r = Robots::parse(&text, AGENT);
        assert_eq!(r.rules.len(), 15_000);
        assert!(!r.allows("/path/number/14999/a.html"));
        assert!(r.allows("/path/number/14999/a.htmlx"));
        assert!(r.allows("/other"));
        // The rules are the text, no more: well under a megabyte for half a megabyte of file.
        let held: usize = r.rules.iter().map(|(_, p)| p.len()).sum();
        assert!(held < text.len());
    }
}
