//! Links in a note's Markdown body, found with pulldown-cmark so that nothing inside code,
//! math or `%% comments %%` counts.

use std::ops::Range;

use linkify::{LinkFinder, LinkKind as UrlKind};
use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};

use super::{LineIndex, Link, LinkKind, is_web_url, parse_wikilink};

/// Every link of the body, which starts at `body_start` in `text` (after the frontmatter).
/// Ranges and lines refer to the whole `text`.
pub fn body_links(text: &str, body_start: usize, lines: &LineIndex) -> Vec<Link> {
    let body = &text[body_start..];
    let options = Options::ENABLE_WIKILINKS
        | Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_MATH;
    let mut links = Vec::new();
    let mut code: Vec<Range<usize>> = Vec::new();
    let mut texts: Vec<Range<usize>> = Vec::new();
    let mut inside_link = 0usize;
    let mut inside_code_block = false;

    for (event, range) in Parser::new_ext(body, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                ..
            }) => {
                inside_link += 1;
                let raw = &body[range.clone()];
                let link = match link_type {
                    LinkType::WikiLink { .. } => wiki(raw),
                    LinkType::Autolink => Some(plain(LinkKind::Autolink, raw, &dest_url)),
                    LinkType::Email => None,
                    _ => Some(markdown(LinkKind::Markdown, raw, &dest_url)),
                };
                links.extend(link.map(|l| place(l, range, body_start, lines)));
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                ..
            }) => {
                inside_link += 1;
                let raw = &body[range.clone()];
                let link = match link_type {
                    LinkType::WikiLink { .. } => wiki(raw),
                    _ => Some(markdown(LinkKind::Image, raw, &dest_url)),
                };
                links.extend(link.map(|l| place(l, range, body_start, lines)));
            }
            Event::End(TagEnd::Link | TagEnd::Image) => inside_link = inside_link.saturating_sub(1),
            Event::Start(Tag::CodeBlock(_)) => {
                inside_code_block = true;
                code.push(range);
            }
            Event::End(TagEnd::CodeBlock) => inside_code_block = false,
            Event::Code(_) => code.push(range),
            Event::InlineMath(_) | Event::DisplayMath(_) => code.push(range),
            Event::Text(_) if inside_link == 0 && !inside_code_block => match texts.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => texts.push(range),
            },
            _ => {}
        }
    }

    let finder = {
        let mut f = LinkFinder::new();
        f.kinds(&[UrlKind::Url]).url_must_have_scheme(true);
        f
    };
    for text_range in texts {
        let slice = &body[text_range.clone()];
        for found in finder.links(slice) {
            if !is_web_url(found.as_str()) {
                continue;
            }
            let range = text_range.start + found.start()..text_range.start + found.end();
            links.push(place(
                plain(LinkKind::BareUrl, found.as_str(), found.as_str()),
                range,
                body_start,
                lines,
            ));
        }
    }

    let comments = comment_ranges(body, &code);
    if !comments.is_empty() {
        links.retain(|l| {
            let start = l.range.start - body_start;
            !comments.iter().any(|c| c.contains(&start))
        });
    }
    links.sort_by_key(|l| l.range.start);
    links
}

/// Obsidian comments: text between a `%%` and the next `%%` (or the end of the note), where
/// the `%%` is not inside code.
fn comment_ranges(body: &str, code: &[Range<usize>]) -> Vec<Range<usize>> {
    let in_code = |i: usize| code.iter().any(|c| c.contains(&i));
    let mut marks = Vec::new();
    let mut from = 0;
    while let Some(i) = body[from..].find("%%") {
        let at = from + i;
        if !in_code(at) {
            marks.push(at);
        }
        from = at + 2;
    }
    marks
        .chunks(2)
        .map(|pair| pair[0]..pair.get(1).map_or(body.len(), |end| end + 2))
        .collect()
}

fn wiki(raw: &str) -> Option<Link> {
    let parts = parse_wikilink(raw)?;
    Some(Link {
        kind: if parts.embed {
            LinkKind::Embed
        } else {
            LinkKind::Wikilink
        },
        raw: raw.to_string(),
        target: parts.target,
        subpath: parts.subpath,
        alias: parts.alias,
        size: parts.size,
        property: None,
        line: 0,
        range: 0..0,
    })
}

/// A Markdown link or image: internal targets lose their `#fragment` to `subpath`.
fn markdown(kind: LinkKind, raw: &str, dest: &str) -> Link {
    let dest = dest.trim();
    let (target, subpath) = match dest.find('#') {
        Some(i) if !is_web_url(dest) => (&dest[..i], Some(dest[i + 1..].to_string())),
        _ => (dest, None),
    };
    Link {
        subpath: subpath.filter(|s| !s.is_empty()),
        ..plain(kind, raw, target)
    }
}

fn plain(kind: LinkKind, raw: &str, target: &str) -> Link {
    Link {
        kind,
        raw: raw.to_string(),
        target: target.to_string(),
        subpath: None,
        alias: None,
        size: None,
        property: None,
        line: 0,
        range: 0..0,
    }
}

fn place(mut link: Link, range: Range<usize>, offset: usize, lines: &LineIndex) -> Link {
    link.range = range.start + offset..range.end + offset;
    link.line = lines.line(link.range.start);
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(text: &str) -> Vec<Link> {
        body_links(text, 0, &LineIndex::new(text))
    }

    fn kinds_and_targets(text: &str) -> Vec<(LinkKind, String)> {
        links(text)
            .into_iter()
            .map(|l| (l.kind, l.target))
            .collect()
    }

    #[test]
    fn every_kind_of_body_link_is_found_with_its_place() {
        let text = "# T\n[[Note]] ![[pic.png|300]]\n[md](other.md) ![alt](img/a.png)\n<https://auto.link/x> and https://bare.org/a_b.\n";
        let found = links(text);
        let got: Vec<_> = found
            .iter()
            .map(|l| (l.kind, l.target.as_str(), l.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (LinkKind::Wikilink, "Note", 2),
                (LinkKind::Embed, "pic.png", 2),
                (LinkKind::Markdown, "other.md", 3),
                (LinkKind::Image, "img/a.png", 3),
                (LinkKind::Autolink, "https://auto.link/x", 4),
                (LinkKind::BareUrl, "https://bare.org/a_b", 4),
            ]
        );
        for l in &found {
            assert_eq!(&text[l.range.clone()], l.raw, "{l:?}");
        }
    }

    #[test]
    fn links_in_code_are_not_links() {
        let text = "`[[a]]` and `https://x.org`\n\n```\n[[b]] https://y.org [c](d.md)\n```\n\n    [[indented]]\n";
        assert!(links(text).is_empty(), "{:?}", links(text));
    }

    #[test]
    fn links_in_obsidian_comments_are_not_links() {
        let text = "a %% [[hidden]] https://x.org %% [[shown]]\n%%\n[[block hidden]]\n%%\n";
        assert_eq!(
            kinds_and_targets(text),
            vec![(LinkKind::Wikilink, "shown".into())]
        );
    }

    #[test]
    fn an_unclosed_comment_runs_to_the_end_of_the_note() {
        assert_eq!(
            kinds_and_targets("[[a]] %% [[b]]\n[[c]]"),
            vec![(LinkKind::Wikilink, "a".into())]
        );
    }

    #[test]
    fn percent_signs_in_code_do_not_open_a_comment() {
        assert_eq!(
            kinds_and_targets("`%%` [[a]] `%%`"),
            vec![(LinkKind::Wikilink, "a".into())]
        );
    }

    #[test]
    fn markdown_link_fragment_is_a_subpath_but_a_url_keeps_it() {
        let l = &links("[x](Note%20name.md#Part)")[0];
        assert_eq!(
            (l.target.as_str(), l.subpath.as_deref()),
            ("Note%20name.md", Some("Part"))
        );
        let l = &links("[x](https://x.org/a#frag)")[0];
        assert_eq!(l.target, "https://x.org/a#frag");
    }

    #[test]
    fn the_text_of_a_link_is_not_a_bare_url() {
        assert_eq!(
            kinds_and_targets("[https://a.org](https://a.org)"),
            vec![(LinkKind::Markdown, "https://a.org".into())]
        );
    }

    #[test]
    fn bare_url_stops_before_trailing_punctuation_and_spans_emphasis_splits() {
        assert_eq!(
            kinds_and_targets("See (https://x.org/a_b_c), then https://y.org/p?q=1."),
            vec![
                (LinkKind::BareUrl, "https://x.org/a_b_c".into()),
                (LinkKind::BareUrl, "https://y.org/p?q=1".into())
            ]
        );
    }

    #[test]
    fn links_in_tables_with_escaped_pipes() {
        let text = "| a | b |\n|---|---|\n| [[Tab\\|alias]] | ![[pic.png\\|100]] |\n";
        let found = links(text);
        assert_eq!(found[0].target, "Tab");
        assert_eq!(found[0].alias.as_deref(), Some("alias"));
        assert_eq!(found[1].size.as_deref(), Some("100"));
    }

    #[test]
    fn offsets_count_from_the_start_of_the_note() {
        let text = "---\na: 1\n---\n[[x]]\n";
        let found = body_links(text, 13, &LineIndex::new(text));
        assert_eq!(found[0].range, 13..18);
        assert_eq!(found[0].line, 4);
    }

    #[test]
    fn mail_links_are_not_collected() {
        assert!(links("<me@example.org>").is_empty());
    }
}
