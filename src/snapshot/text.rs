//! What a page says to a reader: its title and visible text (for the WACZ page list, which
//! ReplayWeb.page searches), and whether it looks built by scripts (little text, scripts that
//! build the body), which `[snapshot] browser = "auto"` renders in the browser.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use lol_html::{AsciiCompatibleEncoding, HtmlRewriter, Settings, element, text};

/// Text kept per page: enough to search by, bounded for huge pages.
const MAX_TEXT: usize = 100 * 1024;

/// Below this much visible text, a page with scripts is taken for one its scripts build.
const SCRIPT_BUILT_BELOW: usize = 200;

/// A page read for its words.
#[derive(Debug, Default)]
pub struct Reading {
    /// The `<title>`, whitespace folded.
    pub title: String,
    /// The visible text of the body (scripts, styles, templates and `noscript` left out),
    /// whitespace folded.
    pub text: String,
    /// Scripts that run (with a source or code; JSON and templates are data).
    pub scripts: usize,
    /// A `noscript` asks the reader to turn JavaScript on.
    pub needs_javascript: bool,
}

impl Reading {
    /// Whether the page looks built by its scripts: it has scripts and, without them, next
    /// to nothing to read (or says it needs JavaScript and has little else).
    pub fn script_built(&self) -> bool {
        let chars = self.text.chars().count();
        self.scripts > 0
            && (chars < SCRIPT_BUILT_BELOW
                || (self.needs_javascript && chars < 10 * SCRIPT_BUILT_BELOW))
    }
}

/// Reads an HTML page (UTF-8, or another encoding its byte-order mark names).
pub fn read(html: &[u8]) -> Reading {
    let encoding = encoding_rs::Encoding::for_bom(html)
        .map(|(e, _)| e)
        .and_then(AsciiCompatibleEncoding::new)
        .unwrap_or_else(AsciiCompatibleEncoding::utf_8);
    let title = RefCell::new(String::new());
    let body = RefCell::new(String::new());
    let noscript = RefCell::new(String::new());
    let scripts = Cell::new(0usize);
    // Inside a script, style, noscript or template: text nobody sees. Element and text
    // handlers run in document order, so a depth count tells.
    let hidden = Rc::new(Cell::new(0usize));
    {
        let entering = hidden.clone();
        let settings = Settings::new()
            .with_encoding(encoding)
            .append_element_content_handler(text!("title", |t| {
                title.borrow_mut().push_str(t.as_str());
                Ok(())
            }))
            .append_element_content_handler(element!("script", |el| {
                let kind = el
                    .get_attribute("type")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let runs = kind.is_empty() || kind.contains("javascript") || kind == "module";
                if runs {
                    scripts.set(scripts.get() + 1);
                }
                Ok(())
            }))
            .append_element_content_handler(text!("noscript", |t| {
                if noscript.borrow().len() < 4096 {
                    noscript.borrow_mut().push_str(t.as_str());
                }
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
                let mut body = body.borrow_mut();
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
    let needs_javascript = noscript
        .borrow()
        .to_ascii_lowercase()
        .contains("javascript");
    Reading {
        title: fold(&title.into_inner()),
        text: fold(&super::html::decode_entities(&body.into_inner())),
        scripts: scripts.get(),
        needs_javascript,
    }
}

/// The `<title>` and the visible text of an HTML page.
pub fn title_and_text(html: &[u8]) -> (String, String) {
    let r = read(html);
    (r.title, r.text)
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

    #[test]
    fn a_page_its_scripts_build_is_told_from_one_that_has_scripts_and_text() {
        let shell =
            read(b"<html><body><div id=root></div><script src=/app.js></script></body></html>");
        assert!(shell.script_built());
        let noscript = read(
            b"<body><noscript>You need to enable JavaScript to run this app.</noscript>\
              <div id=app>Loading...</div><script type=module src=/main.js></script></body>",
        );
        assert!(noscript.needs_javascript);
        assert!(noscript.script_built());
        let words = "word ".repeat(100);
        let article = read(
            format!("<body><article>{words}</article><script src=/analytics.js></script></body>")
                .as_bytes(),
        );
        assert!(!article.script_built());
        let no_scripts = read(b"<body><img src=a.png></body>");
        assert!(
            !no_scripts.script_built(),
            "nothing to run: nothing a browser would add"
        );
        let data_only = read(b"<body><script type=application/ld+json>{}</script></body>");
        assert_eq!(data_only.scripts, 0);
    }
}
