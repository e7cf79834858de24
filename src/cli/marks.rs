//! `compost`, `links check`, `links restore`: the commands that mark notes.

use anyhow::Context as _;
use serde::Serialize;

use super::files::scan_options;
use super::output::{self, Exit, say};
use super::snapshots::{fetcher, runtime};
use super::{CheckArgs, CompostArgs, Context};
use crate::compost::Compost;
use crate::copies::Copies;
use crate::linkcheck::{self, CheckRecord, Reference, State};
use crate::restore::restore as restore_links;
use crate::scan::{Scan, scan};
use crate::store::Store;

/// Scans first: the notes' current versions are recorded before anything edits them.
fn scanned(ctx: &Context, store: &Store) -> anyhow::Result<Scan> {
    if !ctx.vault.is_dir() {
        anyhow::bail!(crate::scan::Error::NoVault(ctx.vault.clone()));
    }
    Ok(scan(&ctx.vault, store, &scan_options(ctx))?)
}

/// Records the versions vaultkeep just wrote, so the archive holds them too.
fn rescan(ctx: &Context, store: &Store) -> anyhow::Result<()> {
    scan(&ctx.vault, store, &scan_options(ctx))?;
    Ok(())
}

pub(crate) fn compost(ctx: &Context, args: &CompostArgs) -> anyhow::Result<Exit> {
    let (store, _lock) = Store::open_for_writing(&ctx.archive, "compost")?;
    let scan = scanned(ctx, &store)?;
    let view = scan.view()?;
    let fetcher = if args.dry_run {
        None
    } else {
        Some(fetcher(ctx, args.allow_private, false)?)
    };
    let job = Compost {
        vault: &ctx.vault,
        store: &store,
        fetcher: fetcher.as_ref(),
        snapshot: &ctx.config.snapshot,
        today: scan_options(ctx).today,
    };
    let report = runtime()?.block_on(job.run(&view))?;
    if report
        .profiles
        .iter()
        .any(|p| p.result.outcome == "written")
    {
        rescan(ctx, &store)?;
    }
    if args.json {
        output::json(&report)?;
    } else {
        if report.profiles.is_empty() {
            say!("No composted profiles in {}.", ctx.vault.display());
        }
        for p in &report.profiles {
            say!(
                "{} ({}): {}",
                p.note,
                p.reason,
                p.result.outcome.replace('_', " ")
            );
            for c in &p.preserved {
                say!("  preserved {} ({}) → {}", c.url, c.captured, c.copy);
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

/// One URL in the `links check` report.
#[derive(Debug, Serialize)]
struct UrlReport {
    url: String,
    state: State,
    last: CheckRecord,
    checks: usize,
    references: Vec<Reference>,
    local_copy: Option<LocalCopy>,
}

#[derive(Debug, Serialize)]
struct LocalCopy {
    snapshot: String,
    captured: jiff::Timestamp,
    offline: std::path::PathBuf,
}

pub(crate) fn check(ctx: &Context, args: &CheckArgs) -> anyhow::Result<Exit> {
    let config = &ctx.config.links;
    let dead_after = args.dead_after.unwrap_or(config.dead_after);
    let min_gap = linkcheck::parse_duration(args.min_gap.as_deref().unwrap_or(&config.min_gap))
        .map_err(anyhow::Error::msg)?;
    let (store, _lock) = Store::open_for_writing(&ctx.archive, "links check")?;
    let view = scanned(ctx, &store)?.view()?;
    let urls = linkcheck::external_urls(&view);
    let list: Vec<String> = urls.keys().cloned().collect();
    let fetcher = fetcher(ctx, args.allow_private, false)?;
    let results = runtime()?.block_on(linkcheck::check_all(&fetcher, &list, config.concurrency));
    linkcheck::record(&store, &results).context("cannot record the checks")?;
    let history = linkcheck::history(&store)?;
    let copies = Copies::load(&store);
    let mut report = Vec::new();
    for (url, references) in urls {
        let checks = history.get(&url).cloned().unwrap_or_default();
        let Some(last) = checks.last().cloned() else {
            continue;
        };
        report.push(UrlReport {
            state: linkcheck::classify(&checks, dead_after, min_gap),
            checks: checks.len(),
            local_copy: copies.get(&url).map(|c| LocalCopy {
                snapshot: c.snapshot.clone(),
                captured: c.captured,
                offline: c.entry.clone(),
            }),
            url,
            last,
            references,
        });
    }
    let dead = report.iter().filter(|u| u.state == State::Dead).count();
    if args.json {
        output::json(
            &serde_json::json!({ "checked": results.len(), "dead": dead, "urls": report }),
        )?;
    } else {
        let count = |s| report.iter().filter(|u| u.state == s).count();
        say!(
            "Checked {} URLs: {} alive, {} dead, {} unknown.",
            results.len(),
            count(State::Alive),
            dead,
            count(State::Unknown)
        );
        for u in report.iter().filter(|u| u.state != State::Alive) {
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
    Ok(Exit::failed_if(dead > 0))
}

pub(crate) fn restore(ctx: &Context, dry_run: bool, json: bool) -> anyhow::Result<Exit> {
    let (store, _lock) = Store::open_for_writing(&ctx.archive, "links restore")?;
    let view = scanned(ctx, &store)?.view()?;
    let report = restore_links(&ctx.vault, &store, &view, &ctx.config.links, dry_run)?;
    if report.notes.iter().any(|n| n.result.outcome == "written") {
        rescan(ctx, &store)?;
    }
    if json {
        output::json(&report)?;
    } else {
        say!(
            "{} dead URLs; {} notes to point at local copies.",
            report.dead,
            report.notes.len()
        );
        for n in &report.notes {
            say!(
                "{}: {} ({})",
                n.note,
                n.result.outcome.replace('_', " "),
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
