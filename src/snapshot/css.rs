//! URLs in CSS (`url(...)`, `@import "..."`), found with cssparser's tokenizer and rewritten in
//! place, byte for byte everywhere else.

use std::ops::Range;

use cssparser::{Parser, ParserInput, Token};

/// One URL reference in a style sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CssRef {
    /// Bytes of the whole reference (`url(...)` or the `@import` string).
    pub range: Range<usize>,
    /// The URL as written (unescaped).
    pub url: String,
    /// Whether it is the target of an `@import` (a style sheet, not an image or font).
    pub import: bool,
}

/// Blocks nested deeper than this are skipped unread (cssparser skips them without recursion):
/// real style sheets nest a few levels, and a hostile one of 50,000 `(` would otherwise
/// overflow the stack (issue 8).
const MAX_DEPTH: usize = 64;

/// A style sheet's text, decoded as browsers do: a byte-order mark, else `@charset "…";` at
/// its very start, else the `Content-Type` charset, else UTF-8 (issue 8: UTF-16 sheets too).
/// The flag says whether the bytes were UTF-8 already: a rewritten copy of another encoding is
/// written as UTF-8 behind a byte-order mark.
pub fn decode<'a>(bytes: &'a [u8], charset: Option<&str>) -> (std::borrow::Cow<'a, str>, bool) {
    let declared = || {
        let rest = bytes.strip_prefix(b"@charset \"")?;
        let end = rest.iter().position(|b| *b == b'"')?;
        encoding_rs::Encoding::for_label(&rest[..end])
    };
    let encoding = encoding_rs::Encoding::for_bom(bytes)
        .map(|(e, _)| e)
        .or_else(declared)
        .or_else(|| charset.and_then(|c| encoding_rs::Encoding::for_label(c.trim().as_bytes())))
        .unwrap_or(encoding_rs::UTF_8);
    let (text, _) = encoding.decode_with_bom_removal(bytes);
    (text, encoding == encoding_rs::UTF_8)
}

/// Every URL reference in `css`, in order.
pub fn css_refs(css: &str) -> Vec<CssRef> {
    let mut input = ParserInput::new(css);
    let mut parser = Parser::new(&mut input);
    let mut out = Vec::new();
    walk(&mut parser, &mut out, 0);
    out
}

/// `css` with each reference's URL replaced by what `map` returns (unchanged when `None`).
pub fn rewrite_css(css: &str, mut map: impl FnMut(&CssRef) -> Option<String>) -> String {
    let mut out = String::with_capacity(css.len());
    let mut at = 0;
    for r in css_refs(css) {
        if let Some(new) = map(&r) {
            out.push_str(&css[at..r.range.start]);
            if r.import && !css[r.range.clone()].starts_with("url(") {
                out.push_str(&quote(&new));
            } else {
                out.push_str("url(");
                out.push_str(&quote(&new));
                out.push(')');
            }
            at = r.range.end;
        }
    }
    out.push_str(&css[at..]);
    out
}

fn quote(url: &str) -> String {
    let mut s = String::with_capacity(url.len() + 2);
    s.push('"');
    for c in url.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '\n' => s.push_str("\\a "),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn walk(p: &mut Parser<'_, '_>, out: &mut Vec<CssRef>, depth: usize) {
    let mut after_import = false;
    loop {
        let start = p.position().byte_index();
        let token = match p.next_including_whitespace_and_comments() {
            Ok(t) => t.clone(),
            Err(_) => break,
        };
        let end = p.position().byte_index();
        match token {
            Token::WhiteSpace(_) | Token::Comment(_) => continue,
            Token::AtKeyword(ref k) if k.eq_ignore_ascii_case("import") => {
                after_import = true;
                continue;
            }
            Token::UnquotedUrl(url) => out.push(CssRef {
                range: start..end,
                url: url.to_string(),
                import: after_import,
            }),
            Token::QuotedString(s) if after_import => out.push(CssRef {
                range: start..end,
                url: s.to_string(),
                import: true,
            }),
            Token::Function(ref name) if name.eq_ignore_ascii_case("url") => {
                url_function(p, start, after_import, out);
            }
            Token::Function(ref name)
                if name.eq_ignore_ascii_case("image-set")
                    || name.eq_ignore_ascii_case("-webkit-image-set") =>
            {
                // `image-set("a.png" 1x, url(b.png) 2x)`: its strings are URLs too.
                let _ =
                    p.parse_nested_block(|inner| -> Result<(), cssparser::ParseError<'_, ()>> {
                        image_set(inner, out);
                        Ok(())
                    });
            }
            Token::Function(_)
            | Token::ParenthesisBlock
            | Token::SquareBracketBlock
            | Token::CurlyBracketBlock
                if depth < MAX_DEPTH =>
            {
                let _ =
                    p.parse_nested_block(|inner| -> Result<(), cssparser::ParseError<'_, ()>> {
                        walk(inner, out, depth + 1);
                        Ok(())
                    });
            }
            _ => {}
        }
        after_import = false;
    }
}

/// A `url("...")` function whose name was just read at `start`.
fn url_function(p: &mut Parser<'_, '_>, start: usize, import: bool, out: &mut Vec<CssRef>) {
    let mut url = None;
    let _ = p.parse_nested_block(|inner| -> Result<(), cssparser::ParseError<'_, ()>> {
        if let Ok(Token::QuotedString(s)) = inner.next() {
            url = Some(s.to_string());
        }
        while inner.next().is_ok() {}
        Ok(())
    });
    if let Some(url) = url {
        out.push(CssRef {
            range: start..p.position().byte_index(),
            url,
            import,
        });
    }
}

/// The strings and `url()`s inside an `image-set()`.
fn image_set(p: &mut Parser<'_, '_>, out: &mut Vec<CssRef>) {
    loop {
        let start = p.position().byte_index();
        let token = match p.next_including_whitespace_and_comments() {
            Ok(t) => t.clone(),
            Err(_) => break,
        };
        let url = match token {
            Token::QuotedString(s) => s.to_string(),
            Token::UnquotedUrl(u) => u.to_string(),
            Token::Function(ref name) if name.eq_ignore_ascii_case("url") => {
                url_function(p, start, false, out);
                continue;
            }
            _ => continue,
        };
        out.push(CssRef {
            range: start..p.position().byte_index(),
            url,
            import: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(css: &str) -> Vec<(String, bool)> {
        css_refs(css)
            .into_iter()
            .map(|r| (r.url, r.import))
            .collect()
    }

    #[test]
    fn imports_urls_and_fonts_are_found_in_nested_blocks() {
        let css = r#"@import "base.css"; @import url(print.css) print;
            body { background: url(bg.png) no-repeat, url( "a b.jpg" ); }
            @font-face { font-family: X; src: url('f.woff2?v=4') format('woff2'), url(f.woff); }
            @media (min-width: 1px) { .x { background-image: url(nested.svg#frag) } }"#;
        assert_eq!(
            urls(css),
            vec![
                ("base.css".into(), true),
                ("print.css".into(), true),
                ("bg.png".into(), false),
                ("a b.jpg".into(), false),
                ("f.woff2?v=4".into(), false),
                ("f.woff".into(), false),
                ("nested.svg#frag".into(), false),
            ]
        );
    }

    #[test]
    fn image_set_candidates_are_references() {
        let css = r#".hero { background-image: image-set("a.png" 1x, url(b.png) 2x); }"#;
        assert_eq!(
            urls(css),
            vec![("a.png".into(), false), ("b.png".into(), false)]
        );
        let out = rewrite_css(css, |r| Some(format!("L/{}", r.url)));
        assert_eq!(
            out,
            r#".hero { background-image: image-set(url("L/a.png") 1x, url("L/b.png") 2x); }"#
        );
    }

    #[test]
    fn utf16_and_declared_charsets_are_decoded() {
        let mut le = vec![0xFF, 0xFE];
        for unit in "a{background:url(b.png)}".encode_utf16() {
            le.extend(unit.to_le_bytes());
        }
        let (text, utf8) = decode(&le, None);
        assert_eq!((text.as_ref(), utf8), ("a{background:url(b.png)}", false));
        let latin = b"@charset \"iso-8859-1\"; .x{content:'\xe9'}";
        let (text, utf8) = decode(latin, Some("utf-8"));
        assert!(text.contains('\u{e9}') && !utf8);
    }

    #[test]
    fn deep_nesting_is_skipped_without_exhausting_the_stack() {
        let hostile = format!("b:{}", "(".repeat(50_000));
        assert!(urls(&hostile).is_empty());
        let deep = format!(
            "{}url(deep.png){} .a{{background:url(ok.png)}}",
            "(".repeat(200),
            ")".repeat(200)
        );
        assert_eq!(urls(&deep), vec![("ok.png".into(), false)]);
        let curly = "{".repeat(100_000);
        assert!(urls(&curly).is_empty());
    }

    #[test]
    fn urls_in_comments_and_strings_are_not_references() {
        assert!(urls("/* url(no.png) */ .a { content: 'url(no.png)' }").is_empty());
    }

    #[test]
    fn rewriting_changes_only_the_references() {
        let css = "@import 'a.css';\n.x{background:url(b.png) /* keep */}\n";
        let out = rewrite_css(css, |r| Some(format!("local/{}", r.url)));
        assert_eq!(
            out,
            "@import \"local/a.css\";\n.x{background:url(\"local/b.png\") /* keep */}\n"
        );
        assert_eq!(rewrite_css(css, |_| None), css);
    }

    #[test]
    fn escaped_urls_are_unescaped_and_requoted_safely() {
        let css = r#".x { background: url("q\"uote.png") }"#;
        assert_eq!(urls(css), vec![("q\"uote.png".into(), false)]);
        assert_eq!(
            rewrite_css(css, |r| Some(r.url.clone())),
            r#".x { background: url("q\"uote.png") }"#
        );
    }
}
