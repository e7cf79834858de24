//! `vaultkeep scan` on the test vaults, with facts established independently of vaultkeep.

use serde_json::Value;

use crate::common::{Sandbox, count_content, data, stderr, strings};

#[test]
fn every_test_vault_is_counted_as_obsidian_sees_it() {
    for name in ["cohere", "kepano", "dendron"] {
        let s = Sandbox::with_data_vault(name);
        let (notes, assets) = count_content(&data(&format!("vaults/{name}")));
        let (report, _) = s.scan();
        assert_eq!(report["notes"], notes, "{name}");
        assert_eq!(report["assets"], assets, "{name}");
        assert_eq!(
            report["recorded"],
            notes + assets,
            "{name}: every file is a new version"
        );
    }
}

#[test]
fn cohere_has_one_composted_profile_and_the_ouishare_links() {
    let s = Sandbox::with_data_vault("cohere");
    let (r, code) = s.scan();
    assert_eq!(code, 0);
    let composted = r["composted"].as_array().unwrap();
    assert_eq!(composted.len(), 1, "{composted:?}");
    assert_eq!(
        composted[0]["note"],
        "content/ecosystem/cohere/profiles/Ouishare.md"
    );
    assert_eq!(composted[0]["reason"], "end: 2023 is in the past");
    let urls = strings(&r["urls"]);
    for url in [
        "https://www.ouishare.net",
        "https://www.ouishare.net/mission",
        "https://handbook.ouishare.net/",
    ] {
        assert!(urls.contains(&url.to_string()), "{url} missing");
    }
    let mut sorted = urls.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(urls, sorted, "urls are distinct and sorted");
    // The images and PDFs the profiles embed are missing from this vault ("as after a bad sync").
    let unresolved = r["unresolved"].as_array().unwrap();
    let ouishare: Vec<_> = unresolved
        .iter()
        .filter(|u| u["note"] == "content/ecosystem/cohere/profiles/Ouishare.md")
        .map(|u| (u["target"].as_str().unwrap(), u["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ouishare,
        vec![
            ("../../../assets/ouishare-homepage.png", 18),
            ("../../../assets/ouishare-logo.png", 19),
            ("../../../assets/ouishare-political-commitment.pdf", 61),
        ]
    );
}

#[test]
fn the_earlier_ouishare_version_links_the_logo_that_exists() {
    // `_history/content/...` sits one level deeper than `content/`, so its
    // `../../../assets/ouishare-logo.svg` resolves to `_history/content/assets/...` (missing),
    // while the `content/` profile's png is missing too: both reported, nothing read outside.
    let s = Sandbox::with_data_vault("cohere");
    let (r, _) = s.scan();
    let targets: Vec<_> = r["unresolved"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["note"].as_str().unwrap().starts_with("_history/"))
        .map(|u| u["target"].as_str().unwrap().to_string())
        .collect();
    assert!(
        targets.contains(&"../../../assets/ouishare-logo.svg".to_string()),
        "{targets:?}"
    );
}

#[test]
fn kepano_templates_with_placeholders_are_reported_and_their_body_links_still_read() {
    let s = Sandbox::with_data_vault("kepano");
    let (r, code) = s.scan();
    assert_eq!(code, 1, "problems make the exit code 1");
    let problems = r["problems"].as_array().unwrap();
    // PyYAML rejects exactly these 28 templates: their `{{date}}` placeholders parse as mapping keys.
    assert_eq!(problems.len(), 28, "{problems:#?}");
    assert!(
        problems
            .iter()
            .all(|p| p["path"].as_str().unwrap().starts_with("Templates/"))
    );
    let book = problems
        .iter()
        .find(|p| p["path"] == "Templates/Book Template.md")
        .unwrap();
    assert!(
        book["message"].as_str().unwrap().contains("line 13"),
        "{book}"
    );
    // Its body embeds `![[Books.base#...]]`-style views; they are still found and resolved.
    assert!(r["links"]["embed"].as_u64().unwrap() > 0);
    let unresolved_daily = r["unresolved"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["target"] == "Daily.base");
    assert!(
        !unresolved_daily,
        "`![[Daily.base]]` resolves by name to Templates/Bases/Daily.base"
    );
}

#[test]
fn kepano_frontmatter_wikilinks_in_lists_are_links() {
    let s = Sandbox::with_data_vault("kepano");
    let (r, _) = s.scan();
    // "Notes/2023 Japan Trip.md" lists `loc: ["[[Kyoto]]", "[[Japan]]"]`: Kyoto exists, Japan does not.
    let trip: Vec<_> = r["unresolved"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["note"] == "Notes/2023 Japan Trip.md")
        .map(|u| u["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(trip, vec!["Japan"]);
    // A trip's `end` date is not an organization's end.
    assert!(
        r["composted"].as_array().unwrap().is_empty(),
        "{}",
        r["composted"]
    );
}

#[test]
fn dendron_links_are_counted_by_kind() {
    let s = Sandbox::with_data_vault("dendron");
    let (r, _) = s.scan();
    let links = &r["links"];
    for kind in [
        "wikilink",
        "embed",
        "markdown",
        "image",
        "autolink",
        "bare_url",
        "frontmatter",
    ] {
        assert!(links[kind].is_u64(), "{kind} missing from {links}");
    }
    assert!(links["wikilink"].as_u64().unwrap() > 1000);
    assert!(links["markdown"].as_u64().unwrap() > 100);
    let urls = strings(&r["urls"]);
    assert!(
        urls.iter()
            .all(|u| u.starts_with("http://") || u.starts_with("https://"))
    );
    // `[[Create New Vault|dendron://...]]`: by Obsidian's rule the target is the first part.
    let unresolved = r["unresolved"].as_array().unwrap();
    assert!(
        unresolved
            .iter()
            .any(|u| u["note"] == "dendron.tutorial.vaults.md" && u["target"] == "Create New Vault")
    );
}

#[test]
fn the_sample_vault_shows_its_one_broken_embed_and_ouishare_composted() {
    let s = Sandbox::with_sample_vault();
    let (r, code) = s.scan();
    assert_eq!(code, 0, "{r}");
    let broken: Vec<_> = r["unresolved"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["target"].as_str().unwrap().ends_with(".pdf"))
        .map(|u| u["note"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(broken, vec!["ecosystem/cohere/profiles/Ulex_Project.md"]);
    assert_eq!(
        r["composted"][0]["note"],
        "ecosystem/cohere/profiles/Ouishare.md"
    );
    assert_eq!(r["composted"].as_array().unwrap().len(), 1);
    let urls = strings(&r["urls"]);
    assert!(urls.contains(&"https://handbook.ouishare.net/".to_string()));
}

#[test]
fn an_unchanged_rescan_records_nothing() {
    let s = Sandbox::with_data_vault("cohere");
    let (first, _) = s.scan();
    assert!(first["recorded"].as_u64().unwrap() > 0);
    let (second, _) = s.scan();
    assert_eq!(second["recorded"], 0);
    assert_eq!(second["new_bytes"], 0);
    assert_eq!(second["urls"], first["urls"]);
    assert_eq!(second["unresolved"], first["unresolved"]);
}

#[test]
fn a_rescan_after_deleting_the_index_rehashes_but_records_nothing() {
    let s = Sandbox::with_data_vault("cohere");
    s.scan();
    std::fs::remove_file(s.archive.join("index")).unwrap();
    std::fs::remove_dir_all(s.archive.join("cache")).unwrap();
    let (r, _) = s.scan();
    assert_eq!(r["recorded"], 0);
    assert_eq!(r["composted"].as_array().unwrap().len(), 1);
}

/// In the cohere vault: a profile edited, one moved to the vault's folder, one deleted, and a
/// note in a new folder.
fn edit_move_delete_and_create(s: &Sandbox) {
    let profiles = s.vault.join("ecosystem/cohere/profiles");
    std::fs::write(
        profiles.join("Catalist.md"),
        "---\ntitle: Catalist\n---\nrewritten\n",
    )
    .unwrap();
    std::fs::rename(
        profiles.join("Naia_Trust.md"),
        s.vault.join("Naia_Trust.md"),
    )
    .unwrap();
    std::fs::remove_file(profiles.join("Terra_Meera.md")).unwrap();
    s.write("new/Note.md", "[[Catalist]]");
}

/// A scan report recording what [`edit_move_delete_and_create`] did, as such.
fn assert_one_event_of_each(r: &Value) {
    assert_eq!(r["recorded"], 4, "{r}");
    assert_eq!(r["events"]["modified"], 1);
    assert_eq!(r["events"]["renamed"], 1);
    assert_eq!(r["events"]["deleted"], 1);
    assert_eq!(r["events"]["created"], 1);
}

#[test]
fn edits_renames_and_deletions_are_recorded_as_such() {
    let s = Sandbox::with_data_vault("cohere");
    s.scan();
    edit_move_delete_and_create(&s);
    assert_one_event_of_each(&s.scan().0);
}

/// How many folders a scan listed as the last scan kept them (its debug log says).
fn folders_listed_as_kept(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find(|l| l.contains("listed the folders that did not change"))
        .unwrap_or_else(|| panic!("no line on the kept listings in:\n{stderr}"));
    let at = line.find("unchanged=").unwrap() + "unchanged=".len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_rescan_lists_unchanged_folders_as_kept_and_records_every_change_in_the_others() {
    let s = Sandbox::with_data_vault("cohere");
    // A folder's listing is kept once it has not changed for two seconds.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    s.scan();
    assert!(s.archive.join("cache/folders").is_file());
    let debug_scan = |args: &[&str]| {
        let out = s
            .cmd(args)
            .arg("--json")
            .env("RUST_LOG", "vaultkeep=debug")
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (report, stderr(&out))
    };
    let (unchanged, log) = debug_scan(&["scan"]);
    assert_eq!(unchanged["recorded"], 0);
    let every_folder = folders_listed_as_kept(&log);
    assert!(every_folder > 5, "{log}");
    // An edit in a kept folder, a rename out of one, a deletion, a new folder.
    edit_move_delete_and_create(&s);
    let (r, log) = debug_scan(&["scan"]);
    assert_one_event_of_each(&r);
    // The vault's folder and the profiles were read again; the others were as kept.
    let kept = folders_listed_as_kept(&log);
    assert_eq!(kept, every_folder - 2, "{log}");
    // `--every-file` reads every folder and finds nothing more to record.
    let (again, log) = debug_scan(&["scan", "--every-file"]);
    assert_eq!(
        (again["recorded"].as_u64(), folders_listed_as_kept(&log)),
        (Some(0), 0)
    );
}

#[test]
fn dot_folders_and_an_archive_inside_the_vault_are_not_content() {
    let mut s = Sandbox::empty();
    s.archive = s.vault.join("_archive");
    s.write("a.md", "x");
    s.write(".obsidian/workspace.json", "{}");
    s.write(".trash/old.md", "old");
    let (r, _) = s.scan();
    assert_eq!(
        (r["notes"].as_u64(), r["assets"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    let (again, _) = s.scan();
    assert_eq!(
        again["recorded"], 0,
        "the archive's own files are not recorded"
    );
    assert_eq!(again["assets"], 0);
}

#[test]
fn a_missing_vault_cannot_run() {
    let s = Sandbox::empty();
    let out = s
        .cmd(&["scan"])
        .arg("--vault")
        .arg(s.dir.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::common::stderr(&out).contains("no vault at"));
}

#[test]
fn a_locked_archive_cannot_run_and_names_the_holder() {
    let s = Sandbox::with_data_vault("cohere");
    s.scan();
    // Another writer (beside the daemon, a scan reports instead: below).
    let _lock = hold_lock(&s, "compost");
    let out = s.run(&["scan"]);
    assert_eq!(out.status.code(), Some(2));
    let err = crate::common::stderr(&out);
    assert!(
        err.contains("pid 4242") && err.contains("vaultkeep compost"),
        "{err}"
    );
}

#[test]
fn beside_the_daemon_a_scan_counts_the_changes_it_leaves_to_the_daemon() {
    let s = Sandbox::empty();
    s.write("a.md", "a");
    s.write("b.md", "b");
    s.scan();
    s.write("a.md", "a, edited");
    s.write("c.md", "c");
    let versions = s.archive.join("versions.jsonl");
    let before = std::fs::read(&versions).unwrap();
    let _lock = hold_lock(&s, "watch");
    let (report, code) = s.scan();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["recorded"], 0, "{report}");
    assert_eq!(report["unrecorded"], 2, "{report}");
    assert_eq!(report["notes"], 3, "{report}");
    assert_eq!(std::fs::read(&versions).unwrap(), before);
}

/// Holds the archive's lock as a vaultkeep process running `command` would, until dropped.
fn hold_lock(s: &Sandbox, command: &str) -> std::fs::File {
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(s.archive.join("lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let holder = format!(r#"{{"pid":4242,"command":"{command}","since":"2026-11-27T10:00:00Z"}}"#);
    std::fs::write(s.archive.join("lock"), holder).unwrap();
    lock
}

#[test]
fn the_brief_report_counts_what_the_full_one_lists_and_shows_its_first_items() {
    // The brief report (what a person reads) holds only the first items of each list, however
    // large the vault; its counts and items must be those of the full `--json` report.
    let s = Sandbox::with_data_vault("kepano");
    let brief = s.run(&["scan"]);
    let text = String::from_utf8_lossy(&brief.stdout).to_string();
    let (full, _) = s.scan();
    let unresolved = full["unresolved"].as_array().unwrap();
    let problems = full["problems"].as_array().unwrap();
    assert!(
        unresolved.len() > 10 && problems.len() > 10,
        "kepano has long lists"
    );
    assert!(
        text.contains(&format!("Unresolved links ({}):", unresolved.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!("Problems ({}):", problems.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "External URLs: {}",
            full["urls"].as_array().unwrap().len()
        )),
        "{text}"
    );
    let shown: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Unresolved links"))
        .skip(1)
        .take(10)
        .collect();
    for (line, item) in shown.iter().zip(unresolved) {
        let expected = format!(
            "  {}:{}  {}",
            item["note"].as_str().unwrap(),
            item["line"],
            item["target"].as_str().unwrap()
        );
        assert!(line.starts_with(&expected), "{line} is not {expected}");
    }
}

#[test]
fn a_lost_or_torn_note_cache_only_costs_time() {
    // The note cache is derived: deleted, or cut mid-line by a crash, the next report is the
    // same (the notes are read again from the archive's copies and cached again).
    let s = Sandbox::with_data_vault("cohere");
    let (first, _) = s.scan();
    let cache = s.archive.join("cache");
    let notes = cache.join("notes.jsonl");
    let whole = std::fs::read(&notes).unwrap();
    assert!(whole.len() > 1000, "the cache holds the notes");
    for damage in ["deleted", "torn"] {
        // The summary is cached too: removed, so the notes must be read.
        for f in ["summary.json", "summary-brief.json"] {
            let _ = std::fs::remove_file(cache.join(f));
        }
        match damage {
            "deleted" => std::fs::remove_file(&notes).unwrap(),
            _ => std::fs::write(&notes, &whole[..whole.len() * 2 / 3]).unwrap(),
        }
        let (again, _) = s.scan();
        for key in [
            "notes",
            "links",
            "urls",
            "unresolved",
            "ambiguous",
            "composted",
            "problems",
        ] {
            assert_eq!(again[key], first[key], "{damage}: {key}");
        }
        assert_eq!(again["recorded"], 0);
        // What was missing is cached again: a line per note content.
        let lines = std::fs::read_to_string(&notes).unwrap().lines().count();
        assert!(
            lines > first["notes"].as_u64().unwrap() as usize / 2,
            "{damage}: {lines} lines"
        );
    }
}

/// A scan in rounds of a few files (`VAULTKEEP_SCAN_BATCH`), as a large vault is scanned; its
/// report and exit code, having checked from its log that it took several batches.
fn scan_in_rounds(s: &Sandbox, args: &[&str]) -> (Value, i32) {
    let args = [&["scan", "--json"], args].concat();
    let out = s
        .cmd(&args)
        .env("VAULTKEEP_SCAN_BATCH", "2")
        .env("RUST_LOG", "vaultkeep=debug")
        .output()
        .unwrap();
    let batches = stderr(&out).matches("examined a batch").count();
    assert!(batches >= 2, "{batches} batches: {}", stderr(&out));
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (value, out.status.code().unwrap_or(-1))
}

#[test]
fn a_scan_in_rounds_finds_a_rename_from_a_path_it_lists_later() {
    let s = Sandbox::empty();
    for i in 0..30 {
        s.write(&format!("m/{i:02}.md"), format!("note {i}"));
    }
    s.write("z/moved.md", "moved far back");
    s.scan();
    // Listed in the first round; where it came from is met only in the last.
    std::fs::rename(s.vault.join("z/moved.md"), s.vault.join("a.md")).unwrap();
    s.write("m/05.md", "edited");
    let (r, code) = scan_in_rounds(&s, &[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["recorded"], 2, "{r}");
    assert_eq!(r["events"]["renamed"], 1, "{r}");
    assert_eq!(r["events"]["modified"], 1, "{r}");
    let (again, _) = s.scan();
    assert_eq!(again["recorded"], 0, "{again}");
}

#[test]
fn a_mass_deletion_found_in_the_last_round_records_nothing_of_the_earlier_ones() {
    let s = Sandbox::empty();
    for i in 0..10 {
        s.write(&format!("a/{i}.md"), format!("kept {i}"));
    }
    for i in 0..20 {
        s.write(&format!("z/{i:02}.md"), format!("to go {i}"));
    }
    s.scan();
    let log = || std::fs::read(s.archive.join("versions.jsonl")).unwrap();
    let before = log();
    // Edits and new files in the first rounds, most known files gone from the last.
    s.write("a/0.md", "edited");
    s.write("a/new.md", "new");
    std::fs::remove_dir_all(s.vault.join("z")).unwrap();
    let (_, code) = scan_in_rounds(&s, &[]);
    assert_eq!(code, 2);
    assert_eq!(log(), before, "nothing recorded");
    let (r, code) = scan_in_rounds(&s, &["--accept-deletions"]);
    assert_eq!(code, 0, "{r}");
    let events = &r["events"];
    assert_eq!(
        (&events["deleted"], &events["modified"], &events["created"]),
        (&Value::from(20), &Value::from(1), &Value::from(1)),
        "{r}"
    );
}
