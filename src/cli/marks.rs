//! `compost`, `links check`, `links restore`: the commands that mark notes.

use super::files::{ask_the_daemon, scan_options};
use super::output::{self, Exit, say};
use super::snapshots::{fetcher, launcher, runtime};
use super::{CheckArgs, CompostArgs, Context, ProfileScreenshotArgs, RestoreArgs, RuleArgs};
use crate::compost::Compost;
use crate::linkcheck::{self, Rule, State, Verdict};
use crate::restore::restore as restore_links;
use crate::scan::{Scan, ScanOptions, scan};
use crate::store::{Lock, Store};

/// The archive and the vault as they are now. A real run takes the writer's lock and scans
/// first, so the notes' current versions are recorded before anything edits them. A dry run
/// takes no lock and records nothing, so it works beside a running daemon (issue 9).
fn scanned(
    ctx: &Context,
    command: &str,
    dry_run: bool,
) -> anyhow::Result<(Store, Option<Lock>, Scan)> {
    crate::scan::check_vault(&ctx.vault)?;
    let (store, lock) = if dry_run {
        (Store::open_for_preview(&ctx.archive)?, None)
    } else {
        let (store, lock) = Store::open_for_writing(&ctx.archive, command)?;
        (store, Some(lock))
    };
    let mut options = ScanOptions {
        record: !dry_run,
        ..scan_options(ctx)
    };
    if dry_run {
        ask_the_daemon(&store, &mut options);
    }
    let scan = scan(&ctx.vault, &store, &options)?;
    Ok((store, lock, scan))
}

/// Records the versions vaultkeep just wrote, so the archive holds them too.
fn rescan(ctx: &Context, store: &Store) -> anyhow::Result<()> {
    scan(&ctx.vault, store, &scan_options(ctx))?;
    Ok(())
}

pub(crate) fn compost(ctx: &Context, args: &CompostArgs) -> anyhow::Result<Exit> {
    let (store, _lock, scan) = scanned(ctx, "compost", args.dry_run)?;
    let view = scan.view()?;
    let (fetcher, browser) = if args.dry_run {
        (None, None)
    } else {
        (
            Some(fetcher(ctx, args.allow_private, false)?),
            launcher(ctx, &ctx.config.snapshot)?,
        )
    };
    let job = Compost {
        vault: &ctx.vault,
        store: &store,
        tools: fetcher.as_ref().map(|fetcher| crate::snapshot::Tools {
            fetcher,
            browser: browser.as_ref(),
        }),
        snapshot: &ctx.config.snapshot,
        today: scan_options(ctx).today,
        gate: None,
        stop: crate::snapshot::Stop::new(),
    };
    let report = runtime()?.block_on(async {
        let signals = super::snapshots::stop_on_signals(job.stop.clone());
        let report = job.run(&view).await;
        signals.abort();
        report
    })?;
    if report.profiles.iter().any(|p| p.result.written()) {
        rescan(ctx, &store)?;
    }
    if args.json {
        output::json(&report)?;
    } else {
        if report.profiles.is_empty() {
            say!("No composted profiles in {}.", ctx.vault.display());
        }
        for p in &report.profiles {
            say!("{} ({}): {}", p.note, p.reason, p.result.outcome.words());
            for c in &p.preserved {
                say!("  preserved {} ({}) → {}", c.url, c.captured, c.copy);
            }
            if !p.preserved.is_empty() {
                let stem = std::path::Path::new(&p.note)
                    .file_stem()
                    .map_or("preserved".into(), |s| s.to_string_lossy().into_owned());
                say!(
                    "  as one file for other tools: vaultkeep archive export --wacz {} --note {}",
                    output::shell_word(&format!("{stem}.wacz")),
                    output::shell_word(&p.note)
                );
            }
            if let Some(look) = &p.last_look {
                say!("  last look: {look}");
            }
            for m in &p.missing {
                say!("  missing   {} ({})", m.path, m.message);
            }
            if let Some(d) = &p.result.detail {
                say!("  {d}");
            }
            if let Some(diff) = &p.result.diff {
                say!("{diff}");
            }
        }
        if report.snapshots_taken > 0 {
            say!("Took {} snapshots.", report.snapshots_taken);
        }
    }
    Ok(Exit::failed_if(report.failed()))
}

pub(crate) fn profile_pictures(
    ctx: &Context,
    args: &ProfileScreenshotArgs,
) -> anyhow::Result<Exit> {
    let launcher = crate::browser::Launcher::new(&ctx.config.browser);
    if !args.dry_run && launcher.executable().is_none() {
        anyhow::bail!(crate::browser::BrowserError::NotFound);
    }
    let (store, _lock, scan) = scanned(ctx, "profiles screenshot", args.dry_run)?;
    let view = scan.view()?;
    let mut notes: Vec<String> = Vec::new();
    for typed in &args.notes {
        match crate::vault::relative_path(&ctx.vault, typed, |p| view.note(p).is_some())
            .filter(|p| view.note(p).is_some())
        {
            Some(n) => notes.push(n),
            None => anyhow::bail!("{typed} is not a note of {}", ctx.vault.display()),
        }
    }
    let fetcher = fetcher(ctx, args.allow_private, false)?;
    let job = crate::profiles::Homepages {
        vault: &ctx.vault,
        store: &store,
        tools: (!args.dry_run).then_some((&fetcher, &launcher)),
        missing_only: args.missing,
    };
    let reports = runtime()?.block_on(job.run(&view, &notes));
    if reports
        .iter()
        .any(|r| r.picture_result.written() || r.note_result.written())
    {
        rescan(ctx, &store)?;
    }
    if args.json {
        output::json(&serde_json::json!({ "profiles": reports }))?;
    } else {
        if reports.is_empty() {
            say!("No profiles to picture in {}.", ctx.vault.display());
        }
        for r in &reports {
            match &r.problem {
                Some(p) => say!("{} ({}): no picture: {p}", r.note, r.url),
                None => say!(
                    "{} ({}): {} {}{}",
                    r.note,
                    r.url,
                    r.picture,
                    r.picture_result.outcome.words(),
                    if r.note_result.outcome == crate::annotate::Effect::Unchanged {
                        String::new()
                    } else {
                        format!("; image: {}", r.note_result.outcome.words())
                    }
                ),
            }
            if let Some(d) = &r.note_result.diff {
                say!("{d}");
            }
        }
    }
    Ok(Exit::failed_if(reports.iter().any(|r| r.failed())))
}

/// The rule the command line asks for, over `base`.
fn rule(base: Rule, args: &RuleArgs) -> Rule {
    Rule {
        dead_after: args.dead_after.unwrap_or(base.dead_after),
        min_gap: args.min_gap.unwrap_or(base.min_gap),
    }
}

pub(crate) fn check(ctx: &Context, args: &CheckArgs) -> anyhow::Result<Exit> {
    let config = &ctx.config.links;
    let rule = rule(config.into(), &args.rule);
    let (store, _lock, scan) = scanned(ctx, "links check", false)?;
    let view = scan.view()?;
    let fetcher = fetcher(ctx, args.allow_private, false)?;
    let explicit = args.rule.dead_after.is_some() || args.rule.min_gap.is_some();
    let report = runtime()?.block_on(linkcheck::run(
        &fetcher,
        &store,
        &view,
        rule,
        explicit,
        config.concurrency,
    ))?;
    if args.json {
        output::json(&report)?;
    } else {
        say!(
            "Checked {} URLs: {} alive, {} dead, {} unknown.",
            report.checked,
            report.count(State::Alive),
            report.dead,
            report.count(State::Unknown)
        );
        if report.offline {
            say!(
                "The network seems down: nearly every host failed before answering. These checks \
                 are recorded as offline and judge nothing; run again when online."
            );
        }
        for u in report.urls.iter().filter(|u| u.state != State::Alive) {
            let last = u.last.detail.clone().unwrap_or_else(|| "ok".into());
            let copy = if u.local_copy.is_some() {
                "local copy"
            } else {
                "no local copy"
            };
            let first = u
                .references
                .first()
                .map(|r| format!("{}:{}", r.note, r.line))
                .unwrap_or_default();
            say!(
                "  {:<7} {}  ({last}; {} checks; {copy}; {first})",
                format!("{:?}", u.state).to_lowercase(),
                u.url,
                u.checks
            );
        }
    }
    Ok(Exit::failed_if(report.dead > 0))
}

pub(crate) fn restore(ctx: &Context, args: &RestoreArgs) -> anyhow::Result<Exit> {
    let (store, _lock, scan) = scanned(ctx, "links restore", args.dry_run)?;
    // One verdict: the rule the last check was given on its command line, else the config's,
    // unless this command line gives one.
    let base = Verdict::load(&store)
        .filter(|v| v.explicit)
        .map_or((&ctx.config.links).into(), |v| v.rule);
    let rule = rule(base, &args.rule);
    let view = scan.view()?;
    let report = restore_links(&ctx.vault, &store, &view, rule, args.dry_run)?;
    if report.notes.iter().any(|n| n.result.written()) {
        rescan(ctx, &store)?;
    }
    if args.json {
        output::json(&report)?;
    } else {
        say!(
            "{} dead URLs ({} hard failures over at least {}); {} notes to point at local copies.",
            report.dead,
            rule.dead_after,
            rule.min_gap,
            report.notes.len()
        );
        for n in &report.notes {
            say!(
                "{}: {} ({})",
                n.note,
                n.result.outcome.words(),
                n.urls.join(", ")
            );
            if let Some(d) = &n.result.detail {
                say!("  {d}");
            }
            if let Some(diff) = &n.result.diff {
                say!("{diff}");
            }
        }
        for u in &report.without_copy {
            say!(
                "no local copy of {} (run `vaultkeep archive snapshot` while it still answers)",
                u.url
            );
        }
    }
    Ok(Exit::failed_if(report.failed()))
}
