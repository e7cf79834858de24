//! A captured page's title and text, for `pages/pages.jsonl`, which ReplayWeb.page searches.

use lol_html::{AsciiCompatibleEncoding, HtmlRewriter, Settings, element, text};

/// Text kept per page: enough to search by, bounded for huge pages.
const MAX_TEXT: usize = 100 * 1024;

/// The `<title>` and the visible text of an HTML page (scripts, styles and templates left
/// out), whitespace folded.
pub fn title_and_text(html: &[u8]) -> (String, String) {
    let encoding = encoding_rs::Encoding::for_bom(html)
        .map(|(e, _)| e)
        .and_then(AsciiCompatibleEncoding::new)
        .unwrap_or_else(AsciiCompatibleEncoding::utf_8);
    let mut title = String::new();
    let mut body = String::new();
    // Inside a script, style, noscript or template: text nobody sees. Element and text
    // handlers run in document order, so a depth count tells.
    let hidden = std::rc::Rc::new(std::cell::Cell::new(0usize));
    {
        let entering = hidden.clone();
        let settings = Settings::new()
            .with_encoding(encoding)
            .append_element_content_handler(text!("title", |t| {
                title.push_str(t.as_str());
                Ok(())
            }))
            .append_element_content_handler(element!(
                "body script, body style, body noscript, body template",
                move |el| {
                    entering.set(entering.get() + 1);
                    let leaving = entering.clone();
                    if let Some(handlers) = el.end_tag_handlers() {
                        let on_end: lol_html::EndTagHandler<'static> = Box::new(move |_| {
                            leaving.set(leaving.get().saturating_sub(1));
                            Ok(())
                        });
                        handlers.push(on_end);
                    }
                    Ok(())
                }
            ))
            .append_element_content_handler(text!("body", |t| {
                if hidden.get() == 0 && body.len() < MAX_TEXT {
                    body.push_str(t.as_str());
                    if t.last_in_text_node() {
                        body.push(' ');
                    }
                }
                Ok(())
            }));
        let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
        if rewriter.write(html).and_then(|_| rewriter.end()).is_err() {
            tracing::debug!("page text: the HTML could not be read to its end");
        }
    }
    (
        fold(&title),
        fold(&crate::snapshot::html::decode_entities(&body)),
    )
}

fn fold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_and_visible_text_without_scripts_or_styles() {
        let html = b"<html><head><title>The  Handbook</title><style>p{}</style></head>\
            <body>Intro <p>Hello <b>world</b> &amp; more</p><script>var x;</script><div>End</div></body></html>";
        let (title, text) = title_and_text(html);
        assert_eq!(title, "The Handbook");
        assert_eq!(text, "Intro Hello world & more End");
    }
}
