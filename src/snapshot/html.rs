//! The URLs of an HTML page, found and rewritten in one streaming pass with lol_html.
//!
//! The same pass serves both jobs: to crawl, the visitor records each URL and changes nothing;
//! to build the offline copy, it returns each URL's new form. Every byte the visitor does not
//! change comes out as it went in, in the page's own encoding.

use std::cell::RefCell;

use lol_html::html_content::{ContentType, Element, TextChunk};
use lol_html::{AsciiCompatibleEncoding, HtmlRewriter, Settings, element, text};
use url::Url;

use super::css::rewrite_css;

/// What a referenced URL is to the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// A link to another page (`a`, `area`, `meta refresh`): followed only by a crawl.
    Page,
    /// An embedded page (`iframe`, `frame`): captured with its requisites, one level deep.
    Frame,
    /// A style sheet: captured and read for its own references.
    Stylesheet,
    /// Anything else the page needs to render (images, scripts, fonts, icons, media).
    Requisite,
    /// A reference that is neither (canonical, alternate): kept pointing at the web.
    Other,
}

/// One URL reference of a page, resolved against the page's base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlRef {
    /// The absolute URL.
    pub url: Url,
    /// What it is to the page.
    pub kind: RefKind,
}

/// Runs `visit` on every URL reference of `html` and returns the page with each reference
/// replaced by what `visit` returned (kept when it returned `None`). `base` is the page's URL;
/// `<base href>` overrides it and is removed, as are `integrity` attributes and CSP `<meta>`
/// tags, which would block a rewritten copy.
pub fn process_html(
    html: &[u8],
    charset: Option<&str>,
    base: &Url,
    visit: &mut dyn FnMut(&HtmlRef) -> Option<String>,
) -> Vec<u8> {
    let encoding = html_encoding(html, charset);
    match AsciiCompatibleEncoding::new(encoding) {
        Some(ascii) => rewrite(html, ascii, base, visit),
        None => {
            // UTF-16 (lol_html reads ASCII-compatible encodings only): read it as UTF-8 and
            // write the copy as UTF-8 behind a byte-order mark, which browsers obey before
            // any `<meta charset>` (issue 8).
            let (text, _) = encoding.decode_with_bom_removal(html);
            let mut out = b"\xEF\xBB\xBF".to_vec();
            out.extend(rewrite(
                text.as_bytes(),
                AsciiCompatibleEncoding::utf_8(),
                base,
                visit,
            ));
            out
        }
    }
}

/// A page's encoding, as browsers find it: a byte-order mark, else the `Content-Type`
/// charset, else a `<meta>` declaration in the first 1024 bytes, else UTF-8.
fn html_encoding(html: &[u8], charset: Option<&str>) -> &'static encoding_rs::Encoding {
    encoding_rs::Encoding::for_bom(html)
        .map(|(e, _)| e)
        .or_else(|| charset.and_then(|c| encoding_rs::Encoding::for_label(c.trim().as_bytes())))
        .or_else(|| sniff_charset(html))
        .unwrap_or(encoding_rs::UTF_8)
}

fn rewrite(
    html: &[u8],
    encoding: AsciiCompatibleEncoding,
    base: &Url,
    visit: &mut dyn FnMut(&HtmlRef) -> Option<String>,
) -> Vec<u8> {
    let base = RefCell::new(base.clone());
    let visit = RefCell::new(visit);
    let style = RefCell::new(String::new());
    let mut out = Vec::with_capacity(html.len() + html.len() / 8);
    let settings = Settings::new()
        .with_encoding(encoding)
        .with_strict(false)
        .append_element_content_handler(element!("*", |el| {
            element_refs(el, &base, &mut **visit.borrow_mut());
            Ok(())
        }))
        .append_element_content_handler(text!("style", |chunk| {
            style_text(chunk, &style, &base.borrow(), &mut **visit.borrow_mut());
            Ok(())
        }));
    let mut rewriter = HtmlRewriter::new(settings, |bytes: &[u8]| out.extend_from_slice(bytes));
    let result = rewriter.write(html).and_then(|_| rewriter.end());
    if let Err(e) = result {
        tracing::warn!(base = %base_url(&base), "HTML rewriting stopped: {e}; the page is kept as captured");
        return html.to_vec();
    }
    out
}

/// An attribute's value with character references decoded (lol_html gives the raw text).
fn get(el: &Element<'_, '_>, name: &str) -> Option<String> {
    el.get_attribute(name).map(|v| decode_entities(&v))
}

/// Sets an attribute; lol_html escapes only quotes, so `&` is escaped here.
fn set(el: &mut Element<'_, '_>, name: &str, value: &str) {
    let _ = el.set_attribute(name, &value.replace('&', "&amp;"));
}

/// Decodes `&amp;`, `&#38;`, `&#x26;` and the other references that occur in URLs.
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1);
        let (name, after) = match end {
            Some(e) => (
                &rest[1..e],
                if rest[e..].starts_with(';') {
                    &rest[e + 1..]
                } else {
                    &rest[e..]
                },
            ),
            None => (&rest[1..], ""),
        };
        let decoded = if let Some(num) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
        {
            u32::from_str_radix(num, 16).ok().and_then(char::from_u32)
        } else if let Some(num) = name.strip_prefix('#') {
            num.parse::<u32>().ok().and_then(char::from_u32)
        } else {
            match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => None,
            }
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = after;
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn base_url(base: &RefCell<Url>) -> String {
    base.borrow().to_string()
}

fn element_refs(
    el: &mut Element<'_, '_>,
    base: &RefCell<Url>,
    visit: &mut dyn FnMut(&HtmlRef) -> Option<String>,
) {
    let tag = el.tag_name();
    if tag == "base" {
        if let Some(href) = get(el, "href") {
            let joined = base.borrow().join(href.trim());
            if let Ok(u) = joined {
                *base.borrow_mut() = u;
            }
        }
        el.remove();
        return;
    }
    let b = base.borrow().clone();
    let mut one = |el: &mut Element<'_, '_>, attr: &str, kind: RefKind| {
        rewrite_attr(el, attr, kind, &b, visit)
    };
    match tag.as_str() {
        "a" | "area" => one(el, "href", RefKind::Page),
        "link" => {
            let rel = el
                .get_attribute("rel")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let kind = if rel.split_whitespace().any(|r| r == "stylesheet") {
                RefKind::Stylesheet
            } else if rel.split_whitespace().any(|r| {
                matches!(
                    r,
                    "index" | "search" | "alternate" | "next" | "prev" | "previous"
                )
            }) {
                // Other pages of the site, followed by a crawl within its scope as wget does.
                RefKind::Page
            } else if rel.split_whitespace().any(|r| {
                matches!(
                    r,
                    "icon"
                        | "apple-touch-icon"
                        | "apple-touch-icon-precomposed"
                        | "mask-icon"
                        | "manifest"
                        | "preload"
                        | "modulepreload"
                        | "image_src"
                )
            }) {
                RefKind::Requisite
            } else {
                RefKind::Other
            };
            one(el, "href", kind);
            el.remove_attribute("integrity");
        }
        "script" => {
            one(el, "src", RefKind::Requisite);
            el.remove_attribute("integrity");
        }
        "iframe" | "frame" => one(el, "src", RefKind::Frame),
        "img" | "input" | "audio" | "track" | "embed" => one(el, "src", RefKind::Requisite),
        "source" => one(el, "src", RefKind::Requisite),
        "video" => {
            one(el, "src", RefKind::Requisite);
            one(el, "poster", RefKind::Requisite);
        }
        "object" => one(el, "data", RefKind::Requisite),
        "image" | "use" => {
            one(el, "href", RefKind::Requisite);
            one(el, "xlink:href", RefKind::Requisite);
        }
        "body" | "table" | "td" | "th" => one(el, "background", RefKind::Requisite),
        "meta" => meta(el, &b, visit),
        _ => {}
    }
    // Lazy loading and responsive images, on any element.
    for attr in ["data-src", "data-original", "data-lazy-src", "data-bg"] {
        rewrite_attr(el, attr, RefKind::Requisite, &b, visit);
    }
    for attr in ["srcset", "data-srcset"] {
        if let Some(value) = get(el, attr) {
            let new = rewrite_srcset(&value, &b, visit);
            if new != value {
                set(el, attr, &new);
            }
        }
    }
    if let Some(css) = get(el, "style") {
        let new = rewrite_css(&css, |r| css_ref(&r.url, r.import, &b, visit));
        if new != css {
            set(el, "style", &new);
        }
    }
}

/// `<meta http-equiv=refresh content="0; url=...">` is a link; a CSP would block the copy.
fn meta(el: &mut Element<'_, '_>, base: &Url, visit: &mut dyn FnMut(&HtmlRef) -> Option<String>) {
    let equiv = el
        .get_attribute("http-equiv")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if equiv == "content-security-policy" {
        el.remove();
        return;
    }
    if equiv != "refresh" {
        return;
    }
    let Some(content) = get(el, "content") else {
        return;
    };
    let Some(i) = content.to_ascii_lowercase().find("url=") else {
        return;
    };
    let target = content[i + 4..].trim().trim_matches(['\'', '"']);
    if let Ok(url) = base.join(target)
        && let Some(new) = visit(&HtmlRef {
            url,
            kind: RefKind::Page,
        })
    {
        set(el, "content", &format!("{}url={new}", &content[..i]));
    }
}

/// `<style>` text arrives in chunks: gather them, rewrite the whole sheet at the last one.
fn style_text(
    chunk: &mut TextChunk<'_>,
    buffer: &RefCell<String>,
    base: &Url,
    visit: &mut dyn FnMut(&HtmlRef) -> Option<String>,
) {
    buffer.borrow_mut().push_str(chunk.as_str());
    if chunk.last_in_text_node() {
        let css = std::mem::take(&mut *buffer.borrow_mut());
        let new = rewrite_css(&css, |r| css_ref(&r.url, r.import, base, visit));
        chunk.replace(&new, ContentType::Html);
    } else {
        chunk.remove();
    }
}

fn css_ref(
    raw: &str,
    import: bool,
    base: &Url,
    visit: &mut dyn FnMut(&HtmlRef) -> Option<String>,
) -> Option<String> {
    let url = resolve(raw, base)?;
    let kind = if import {
        RefKind::Stylesheet
    } else {
        RefKind::Requisite
    };
    visit(&HtmlRef { url, kind })
}

fn rewrite_attr(
    el: &mut Element<'_, '_>,
    attr: &str,
    kind: RefKind,
    base: &Url,
    visit: &mut dyn FnMut(&HtmlRef) -> Option<String>,
) {
    let Some(raw) = get(el, attr) else {
        return;
    };
    let Some(url) = resolve(&raw, base) else {
        return;
    };
    if let Some(new) = visit(&HtmlRef { url, kind }) {
        set(el, attr, &new);
    }
}

/// An absolute http(s) URL for a reference; `None` for fragments, `data:`, `javascript:`...
pub(crate) fn resolve(raw: &str, base: &Url) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() || raw.starts_with('#') {
        return None;
    }
    let url = base.join(raw).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// Rewrites each candidate URL of a `srcset` (`a.png 1x, b.png 2x`).
fn rewrite_srcset(
    value: &str,
    base: &Url,
    visit: &mut dyn FnMut(&HtmlRef) -> Option<String>,
) -> String {
    let mut out = Vec::new();
    for candidate in srcset_candidates(value) {
        let (url, descriptor) = candidate;
        let new = resolve(url, base)
            .and_then(|u| {
                visit(&HtmlRef {
                    url: u,
                    kind: RefKind::Requisite,
                })
            })
            .unwrap_or_else(|| url.to_string());
        out.push(if descriptor.is_empty() {
            new
        } else {
            format!("{new} {descriptor}")
        });
    }
    if out.is_empty() {
        value.to_string()
    } else {
        out.join(", ")
    }
}

/// `(url, descriptor)` pairs of a srcset, per the HTML parsing rules: a URL runs to
/// whitespace (a trailing comma ends it), the descriptor to the next comma.
pub(crate) fn srcset_candidates(value: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let mut url = &rest[..end];
        rest = &rest[end..];
        if url.ends_with(',') {
            url = url.trim_end_matches(',');
            out.push((url, ""));
            continue;
        }
        let desc_end = rest.find(',').unwrap_or(rest.len());
        out.push((url, rest[..desc_end].trim()));
        rest = &rest[desc_end..];
    }
    out
}

/// The charset a page declares in its first 1024 bytes (`<meta charset>` or http-equiv).
/// A UTF-16 page without a byte-order mark spells it with a NUL after each ASCII letter.
fn sniff_charset(html: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = &html[..html.len().min(1024)];
    let nuls = head.iter().filter(|b| **b == 0).count();
    if nuls * 4 > head.len() && head.len() >= 8 {
        let le = head.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
        return Some(if le * 2 > head.len() / 2 {
            encoding_rs::UTF_16LE
        } else {
            encoding_rs::UTF_16BE
        });
    }
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let i = head.find("charset=")?;
    let value: String = head[i + 8..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        .collect();
    encoding_rs::Encoding::for_label(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(html: &str) -> Vec<(String, RefKind)> {
        let mut found = Vec::new();
        process_html(
            html.as_bytes(),
            None,
            &Url::parse("https://x.org/dir/page.html").unwrap(),
            &mut |r| {
                found.push((r.url.to_string(), r.kind));
                None
            },
        );
        found
    }

    #[test]
    fn every_requisite_kind_is_found() {
        let html = r##"<html><head>
            <link rel="stylesheet" href="s.css"><link rel="icon" href="/favicon.ico"><link rel="manifest" href="m.json">
            <link rel="canonical" href="https://x.org/c"><style>body{background:url(bg.png)}</style>
            <script src="app.js"></script></head><body>
            <img src="a.png" srcset="b.png 2x, c.png 3x"><picture><source srcset="d.webp 1x"></picture>
            <img data-src="lazy.png" data-srcset="lazy2.png 2x"><video poster="poster.jpg" src="v.mp4"></video>
            <iframe src="frame.html"></iframe><div style="background-image:url('div.png')"></div>
            <a href="other.html#x">o</a><a href="#top">top</a><a href="mailto:a@b.c">m</a></body></html>"##;
        let got = refs(html);
        let expect = [
            ("https://x.org/dir/s.css", RefKind::Stylesheet),
            ("https://x.org/favicon.ico", RefKind::Requisite),
            ("https://x.org/dir/m.json", RefKind::Requisite),
            ("https://x.org/c", RefKind::Other),
            ("https://x.org/dir/bg.png", RefKind::Requisite),
            ("https://x.org/dir/app.js", RefKind::Requisite),
            ("https://x.org/dir/a.png", RefKind::Requisite),
            ("https://x.org/dir/b.png", RefKind::Requisite),
            ("https://x.org/dir/c.png", RefKind::Requisite),
            ("https://x.org/dir/d.webp", RefKind::Requisite),
            ("https://x.org/dir/lazy.png", RefKind::Requisite),
            ("https://x.org/dir/lazy2.png", RefKind::Requisite),
            ("https://x.org/dir/v.mp4", RefKind::Requisite),
            ("https://x.org/dir/poster.jpg", RefKind::Requisite),
            ("https://x.org/dir/frame.html", RefKind::Frame),
            ("https://x.org/dir/div.png", RefKind::Requisite),
            ("https://x.org/dir/other.html#x", RefKind::Page),
        ];
        for (url, kind) in expect {
            assert!(
                got.contains(&(url.to_string(), kind)),
                "missing {url} {kind:?} in {got:#?}"
            );
        }
        assert_eq!(got.len(), expect.len(), "{got:#?}");
    }

    #[test]
    fn utf16_pages_have_their_references_found_and_come_out_as_utf8() {
        let page = "<html><head><meta charset=utf-16></head><img src=\"caf\u{e9}.png\"></html>";
        for (bom, enc) in [
            (&b"\xFF\xFE"[..], encoding_rs::UTF_16LE),
            (&b"\xFE\xFF"[..], encoding_rs::UTF_16BE),
            (&b""[..], encoding_rs::UTF_16LE),
        ] {
            // encoding_rs does not encode to UTF-16: spell the code units by hand.
            let mut bytes = bom.to_vec();
            for unit in page.encode_utf16() {
                bytes.extend(if enc == encoding_rs::UTF_16LE {
                    unit.to_le_bytes()
                } else {
                    unit.to_be_bytes()
                });
            }
            let mut seen = Vec::new();
            let out = process_html(
                &bytes,
                None,
                &Url::parse("https://x.org/").unwrap(),
                &mut |r| {
                    seen.push(r.url.to_string());
                    Some("local.png".into())
                },
            );
            assert_eq!(seen, vec!["https://x.org/caf%C3%A9.png"], "{enc:?} {bom:?}");
            assert!(out.starts_with(b"\xEF\xBB\xBF"));
            assert!(
                String::from_utf8(out)
                    .unwrap()
                    .contains("src=\"local.png\"")
            );
        }
    }

    #[test]
    fn link_rels_naming_other_pages_are_pages() {
        let got = refs(
            r#"<link rel="next" href="p2.html"><link rel="alternate" href="fr.html"><link rel="search" href="/s.xml">"#,
        );
        assert!(got.iter().all(|(_, k)| *k == RefKind::Page), "{got:?}");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn base_href_changes_how_later_urls_resolve() {
        let got = refs(r#"<head><base href="https://cdn.org/root/"></head><img src="i.png">"#);
        assert_eq!(
            got,
            vec![("https://cdn.org/root/i.png".to_string(), RefKind::Requisite)]
        );
    }

    #[test]
    fn untouched_pages_come_out_byte_for_byte() {
        let html =
            "<!doctype html><p class=x>caf\u{e9} &amp; <a href='a b.html'>x</a><style>a{}</style>";
        let out = process_html(
            html.as_bytes(),
            None,
            &Url::parse("https://x.org/").unwrap(),
            &mut |_| None,
        );
        assert_eq!(String::from_utf8(out).unwrap(), html);
    }

    #[test]
    fn rewriting_replaces_urls_and_drops_integrity_and_base() {
        let html = r#"<base href="/sub/"><link rel=stylesheet href="s.css" integrity="sha384-x"><img srcset="a.png 1x, b.png 2x"><style>p{background:url(c.png)}</style>"#;
        let out = process_html(
            html.as_bytes(),
            None,
            &Url::parse("https://x.org/").unwrap(),
            &mut |r| Some(format!("L/{}", r.url.path().trim_start_matches('/'))),
        );
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            r#"<link rel=stylesheet href="L/sub/s.css"><img srcset="L/sub/a.png 1x, L/sub/b.png 2x"><style>p{background:url("L/sub/c.png")}</style>"#
        );
    }

    #[test]
    fn a_windows_1252_page_keeps_its_bytes() {
        let html = b"<meta charset=windows-1252><p>caf\xe9</p><img src=\"\xe9.png\">";
        let mut seen = Vec::new();
        let out = process_html(
            html,
            None,
            &Url::parse("https://x.org/").unwrap(),
            &mut |r| {
                seen.push(r.url.to_string());
                Some("local.png".into())
            },
        );
        assert_eq!(seen, vec!["https://x.org/%C3%A9.png"]);
        assert_eq!(
            out,
            b"<meta charset=windows-1252><p>caf\xe9</p><img src=\"local.png\">".to_vec()
        );
    }

    #[test]
    fn character_references_in_attributes_are_decoded_and_ampersands_escaped_again() {
        let got = refs(r#"<img src="q.png?a=1&amp;b=2&#38;c=3&#x26;d=&copy=4">"#);
        assert_eq!(got[0].0, "https://x.org/dir/q.png?a=1&b=2&c=3&d=&copy=4");
        let out = process_html(
            br#"<a href="x?a=1&amp;b=2">"#,
            None,
            &Url::parse("https://x.org/").unwrap(),
            &mut |r| Some(r.url.to_string()),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"<a href="https://x.org/x?a=1&amp;b=2">"#
        );
    }

    #[test]
    fn srcset_candidates_follow_the_html_rules() {
        assert_eq!(
            srcset_candidates("a.png 1x,b.png 2x"),
            vec![("a.png", "1x"), ("b.png", "2x")]
        );
        assert_eq!(
            srcset_candidates(" a.png, b.png 100w "),
            vec![("a.png", ""), ("b.png", "100w")]
        );
    }
}
