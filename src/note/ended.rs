//! Whether a profile's organization has ended ("was composted"), and by which rule.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use yaml_serde::Value;

/// What a note says that bears on composting, kept so the judgement can be made again on
/// another day without re-reading the note.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signals {
    /// The `end` property, trimmed (`2023`, `2023-05-01`, `present`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// The `status` property, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Whether `tags` holds `composted` (or `#composted`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub tagged: bool,
    /// Whether the body says the organization was composted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub body: bool,
    /// Whether the frontmatter names a website (`url`): the mark of a profile.
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_url: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

const WORD: &str = "composted";

impl Signals {
    /// Whether the note says nothing about composting.
    pub fn is_empty(&self) -> bool {
        *self == Signals::default()
    }

    /// Reads `end`, `status` and `tags` from parsed frontmatter.
    pub fn from_properties(value: &Value) -> Signals {
        let text = |key: &str| {
            match value.get(key) {
                Some(Value::String(s)) => Some(s.trim().to_string()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            }
            .filter(|s| !s.is_empty())
        };
        let is_tag = |s: &str| s.trim().trim_start_matches('#').eq_ignore_ascii_case(WORD);
        let tagged = match value.get("tags") {
            Some(Value::Sequence(items)) => items.iter().any(|t| t.as_str().is_some_and(is_tag)),
            Some(Value::String(s)) => s.split([',', ' ']).any(is_tag),
            _ => false,
        };
        let status = text("status").or_else(|| {
            // `composted: true` says the same thing as `status: composted`.
            matches!(value.get(WORD), Some(Value::Bool(true))).then(|| WORD.to_string())
        });
        Signals {
            end: text("end"),
            status,
            tagged,
            body: false,
            has_url: match value.get("url") {
                Some(Value::String(s)) => !s.trim().is_empty(),
                Some(Value::Mapping(_)) => true,
                _ => false,
            },
        }
    }

    /// Whether the body states it: "was composted", "has been composted", "is composted".
    /// "compost power-over culture" (a profile's mission) does not count.
    pub fn body_says_composted(body: &str) -> bool {
        // Every sign holds the word; most notes lack it, and lowercasing a whole body costs
        // more than looking. (No non-ASCII letter lowercases to one of its letters.)
        let has_word = body
            .as_bytes()
            .windows(WORD.len())
            .any(|w| w.eq_ignore_ascii_case(WORD.as_bytes()));
        if !has_word {
            return false;
        }
        let lower = body.to_lowercase();
        ["was ", "is ", "been ", "were ", "got "]
            .iter()
            .any(|verb| lower.contains(&format!("{verb}{WORD}")))
            || [" in ", " on ", " since "].iter().any(|p| {
                // "composted in 2021", not "leaves composted in the bin".
                let needle = format!("{WORD}{p}");
                lower.match_indices(&needle).any(|(i, _)| {
                    lower[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit())
                })
            })
            || has_tag(&lower)
    }

    /// The rule by which the organization of the note at `path` counts as ended on `today`.
    /// A past `end` counts only on a profile (a note with a `url`, or in a `profiles`
    /// folder): a trip note's `end` is just the day it ended. Saying "composted" counts on
    /// any note.
    pub fn judge(&self, path: &str, today: Date) -> Option<String> {
        let profile = self.has_url
            || path
                .split('/')
                .rev()
                .skip(1)
                .any(|dir| dir.eq_ignore_ascii_case("profiles"));
        if profile
            && let Some(end) = &self.end
            && let Some(date) = end_date(end)
            && date <= today
        {
            return Some(format!("end: {end} is in the past"));
        }
        if let Some(status) = &self.status
            && status
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == WORD)
        {
            return Some(format!("status: {status}"));
        }
        if self.tagged {
            return Some("tagged composted".to_string());
        }
        if self.body {
            return Some("the note says it was composted".to_string());
        }
        None
    }
}

/// Whether a (lowercased) text holds the inline tag `#composted` (not `#composted-soil`).
fn has_tag(lower: &str) -> bool {
    lower.match_indices("#composted").any(|(i, m)| {
        let before = lower[..i]
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == '(');
        let after = lower[i + m.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '/'));
        before && after
    })
}

/// The first day of an `end` value: a year (`2023`) or a date (`2023-05-01`). A year counts
/// once it has begun: an organization that ended "in 2026" has ended by late 2026.
fn end_date(end: &str) -> Option<Date> {
    let end = end.trim();
    if let Some(date) = end.get(..10).and_then(|d| d.parse::<Date>().ok()) {
        return Some(date);
    }
    // `2023-06` or `2023/06`: the first day of that month.
    if let (Some(y), Some(m)) = (end.get(..4), end.get(5..7))
        && matches!(end.as_bytes().get(4), Some(b'-' | b'/'))
        && let (Ok(y), Ok(m)) = (y.parse::<i16>(), m.parse::<i8>())
        && let Ok(date) = Date::new(y, m, 1)
    {
        return Some(date);
    }
    // A year on its own, or in words (`2023`, `June 2023`, `2023 (merged)`).
    year_in(end).and_then(|y| Date::new(y, 1, 1).ok())
}

/// The first standalone four-digit year (1800-2199) in a text.
fn year_in(text: &str) -> Option<i16> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|t| t.len() == 4)
        .filter_map(|t| t.parse::<i16>().ok())
        .find(|y| (1800..2200).contains(y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn signals(yaml: &str) -> Signals {
        Signals::from_properties(&yaml_serde::from_str(yaml).unwrap())
    }

    /// A note in a `profiles` folder.
    const PROFILE: &str = "ecosystem/profiles/X.md";

    const TODAY: Date = date(2026, 11, 27);

    #[test]
    fn an_end_year_in_the_past_means_composted() {
        let reason = signals("end: \"2023\"").judge(PROFILE, TODAY).unwrap();
        assert_eq!(reason, "end: 2023 is in the past");
        assert!(signals("end: 2023").judge(PROFILE, TODAY).is_some());
        assert!(signals("end: 2024-03-01").judge(PROFILE, TODAY).is_some());
    }

    #[test]
    fn present_empty_null_and_future_ends_are_not_composted() {
        for yaml in [
            "end: present",
            "end: \"present \"",
            "end: \"\"",
            "end:",
            "end: 2031",
            "end: 2027-01-01",
            "x: 1",
        ] {
            assert_eq!(signals(yaml).judge(PROFILE, TODAY), None, "{yaml}");
        }
    }

    #[test]
    fn status_tags_and_flag_say_composted() {
        assert_eq!(
            signals("status: Composted").judge(PROFILE, TODAY).unwrap(),
            "status: Composted"
        );
        assert_eq!(
            signals("tags: [org, composted]")
                .judge(PROFILE, TODAY)
                .unwrap(),
            "tagged composted"
        );
        assert_eq!(
            signals("tags: \"#composted\"")
                .judge(PROFILE, TODAY)
                .unwrap(),
            "tagged composted"
        );
        assert_eq!(
            signals("composted: true").judge(PROFILE, TODAY).unwrap(),
            "status: composted"
        );
    }

    #[test]
    fn a_past_end_counts_only_on_a_profile() {
        let trip = signals("start: 2023-09-12\nend: 2023-09-30");
        assert_eq!(trip.judge("Notes/2023 Japan Trip.md", TODAY), None);
        assert!(trip.judge("atlas/profiles/Trip.md", TODAY).is_some());
        let with_url = signals("url: https://x.org\nend: 2020");
        assert!(with_url.judge("anywhere/X.md", TODAY).is_some());
        assert!(
            signals("status: composted")
                .judge("Notes/x.md", TODAY)
                .is_some()
        );
    }

    #[test]
    fn the_body_can_say_it() {
        assert!(Signals::body_says_composted(
            "Ouishare was composted in 2023. "
        ));
        assert!(Signals::body_says_composted("It has been Composted."));
        assert!(Signals::body_says_composted(
            "Composted in 2021 after ten years."
        ));
        assert!(Signals::body_says_composted("Status: #composted"));
        assert!(!Signals::body_says_composted(
            "supporting people to compost power-over culture"
        ));
        assert!(!Signals::body_says_composted(
            "see #composted-soil and the composted leaves"
        ));
        assert!(!Signals::body_says_composted(
            "leaves composted in the garden"
        ));
    }

    #[test]
    fn end_values_people_write_are_read() {
        for (yaml, composted) in [
            ("end: 2023-06", true),
            ("end: 2023/06", true),
            ("end: \"June 2023\"", true),
            ("end: \"2019 (merged into X)\"", true),
            ("end: \"ongoing\"", false),
            ("end: \"2030-01\"", false),
        ] {
            assert_eq!(
                signals(yaml).judge(PROFILE, TODAY).is_some(),
                composted,
                "{yaml}"
            );
        }
    }

    #[test]
    fn a_status_that_mentions_composted_counts() {
        assert!(
            signals("status: \"Composted 🌱\"")
                .judge(PROFILE, TODAY)
                .is_some()
        );
        assert!(
            signals("status: composted (2023)")
                .judge(PROFILE, TODAY)
                .is_some()
        );
        assert!(signals("status: active").judge(PROFILE, TODAY).is_none());
    }
}
