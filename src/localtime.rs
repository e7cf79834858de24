//! The day in the system's time zone: what `end` dates are judged against and what dates
//! written into notes say.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Where Unix systems keep the zone's rules (a TZif file, or a link to one).
const LOCALTIME: &str = "/etc/localtime";

/// How long a zone read from the system is used before it is read again: a command dating
/// many copies reads it once, and a daemon follows a change of zone within a minute.
const REREAD: Duration = Duration::from_secs(60);

/// The zone last read, and when.
static READ: Mutex<Option<(Instant, TimeZone)>> = Mutex::new(None);

/// The system's time zone. With `TZ` unset, read from `/etc/localtime` itself: jiff's
/// `TimeZone::system` first looks the zone's name up in the zoneinfo database, which lists
/// every zone on the first lookup (0.6 ms, a sixth of an unchanged rescan's fixed cost), and
/// only the offsets matter for a date. Anything else (`TZ`, Windows, an unreadable file)
/// goes to jiff.
pub fn zone() -> TimeZone {
    let mut read = READ.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, zone)) = &*read
        && at.elapsed() < REREAD
    {
        return zone.clone();
    }
    let zone = match std::env::var_os("TZ") {
        None => zone_in(Path::new(LOCALTIME)),
        Some(_) => TimeZone::system(),
    };
    *read = Some((Instant::now(), zone.clone()));
    zone
}

/// The zone whose rules `tzif` holds, else jiff's system zone.
fn zone_in(tzif: &Path) -> TimeZone {
    std::fs::read(tzif)
        .ok()
        .and_then(|rules| TimeZone::tzif("localtime", &rules).ok())
        .unwrap_or_else(TimeZone::system)
}

/// The date of `at` in the system's time zone.
pub fn date(at: Timestamp) -> Date {
    at.to_zoned_datetime(zone()).date()
}

/// Today in the system's time zone, taken afresh at each call, so time moves while a daemon
/// runs.
pub fn today() -> Date {
    date(Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_date_is_the_one_jiff_finds_for_the_system_zone() {
        // Both read the same rules; only how they find them differs.
        let at: Timestamp = "2026-03-29T00:30:00Z".parse().unwrap();
        assert_eq!(date(at), at.to_zoned_datetime(TimeZone::system()).date());
    }

    #[test]
    fn the_date_follows_the_rules_of_the_zone_file() {
        // tzdata's Etc/GMT-14 (public domain): UTC+14 all year, where a day begins first.
        const GMT_MINUS_14: &[u8] = b"TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\x04\0\0\xc4\xe0\0\0+14\0TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\x04\0\0\xc4\xe0\0\0+14\0\n<+14>-14\n";
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("localtime");
        std::fs::write(&rules, GMT_MINUS_14).unwrap();
        let at: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let zone = zone_in(&rules);
        assert_eq!(zone.to_offset(at).seconds(), 14 * 3600);
        assert_eq!(at.to_zoned_datetime(zone).date().to_string(), "2026-11-29");
        // Rules that cannot be read: the system's zone, as jiff finds it.
        let system = TimeZone::system().to_offset(at);
        assert_eq!(zone_in(&dir.path().join("missing")).to_offset(at), system);
        std::fs::write(&rules, b"not a zone").unwrap();
        assert_eq!(zone_in(&rules).to_offset(at), system);
    }
}
