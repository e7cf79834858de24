//! Text added right after a link in a note's body, such as ` ([archived 2026-11-27](...))`:
//! the original line is only extended.

/// The prefix that marks vaultkeep's own suffix, so a later run updates it rather than adding
/// another.
pub const MARK: &str = " ([archived ";

/// The suffix vaultkeep appends after a dead link: a link to the local copy with its date.
pub fn archived_suffix(date: &str, href: &str) -> String {
    format!("{MARK}{date}]({href}))")
}

/// Inserts each `(offset, text)` into `text`. Where vaultkeep's own suffix already follows an
/// offset, it is replaced (a newer copy updates the link, without duplicates).
pub fn insert_after(text: &str, inserts: &[(usize, String)]) -> String {
    let mut inserts = inserts.to_vec();
    inserts.sort_by_key(|(offset, _)| *offset);
    inserts.dedup_by_key(|(offset, _)| *offset);
    let mut out = String::with_capacity(text.len() + inserts.len() * 80);
    let mut at = 0;
    for (offset, new) in inserts {
        if offset < at || offset > text.len() {
            continue;
        }
        out.push_str(&text[at..offset]);
        out.push_str(&new);
        at = offset + existing_suffix(&text[offset..]);
    }
    out.push_str(&text[at..]);
    out
}

/// Length of vaultkeep's suffix at the start of `rest`, or 0.
fn existing_suffix(rest: &str) -> usize {
    if !rest.starts_with(MARK) {
        return 0;
    }
    let Some(open) = rest.find("](") else {
        return 0;
    };
    match rest[open..].find("))") {
        Some(close) if !rest[..open + close].contains('\n') => open + close + 2,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suffix_extends_the_line_after_the_link() {
        let text = "See https://x.org/ and more.\n";
        let out = insert_after(
            text,
            &[(18, archived_suffix("2026-11-27", "file:///a/b.html"))],
        );
        assert_eq!(
            out,
            "See https://x.org/ ([archived 2026-11-27](file:///a/b.html)) and more.\n"
        );
    }

    #[test]
    fn an_existing_suffix_is_replaced_not_repeated() {
        let text = "https://x.org/ ([archived 2026-01-01](file:///old.html)) end";
        let out = insert_after(
            text,
            &[(14, archived_suffix("2026-11-27", "file:///new.html"))],
        );
        assert_eq!(
            out,
            "https://x.org/ ([archived 2026-11-27](file:///new.html)) end"
        );
        assert_eq!(
            insert_after(
                &out,
                &[(14, archived_suffix("2026-11-27", "file:///new.html"))]
            ),
            out
        );
    }
}
