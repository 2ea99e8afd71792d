//! The report as one self-contained HTML page: inline CSS and SVG, no script, no font, no image
//! fetched from anywhere (a Content-Security-Policy says so to the browser too), so it opens
//! from a mail or a file share as it is.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{Day, EnvReport, Report};
use crate::config::TierName;

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn tier_color(t: Option<&TierName>) -> &'static str {
    match t {
        Some(TierName::Yearly) => "#3f007d",
        Some(TierName::Monthly) => "#08519c",
        Some(TierName::Weekly) => "#4292c6",
        Some(TierName::Daily) => "#9ecae1",
        None => "#bdbdbd",
    }
}

const CSS: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;background:#fff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;border-top:1px solid #ddd;padding-top:14px}\
.meta{color:#666}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700}\
ul.findings{margin:6px 0;padding-left:20px}ul.findings li{color:#cf222e}\
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}\
svg{display:block;margin:6px 0}svg text{font:11px system-ui,sans-serif;fill:#444}table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left}";

/// Renders the whole page.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pgtier report: {host}</title><style>{CSS}</style></head><body>\
         <h1>pgtier report: {host}</h1><p class=\"meta\">{} project/env(s), generated {} UTC; the timeline shows {} to {}.</p>",
        r.envs.len(),
        r.generated_at.format("%Y-%m-%d %H:%M"),
        r.since,
        r.generated_at.date_naive(),
        host = esc(&r.host),
    );
    // Every finding first: what needs a person.
    let total = r.policy_findings.len() + r.envs.iter().map(|e| e.findings.len()).sum::<usize>();
    if total == 0 {
        out += "<p class=\"ok\" id=\"verdict\">Audit: no findings.</p>";
    } else {
        let _ = write!(out, "<p class=\"bad\" id=\"verdict\">Audit: {total} finding(s).</p><ul class=\"findings\">");
        for f in &r.policy_findings {
            let _ = write!(out, "<li>policy [{}] {}: {}</li>", esc(&f.rule), esc(&f.file), esc(&f.message));
        }
        for e in &r.envs {
            // A catalog with thousands of findings (a policy that changed) stays readable.
            for f in e.findings.iter().take(SHOWN_FINDINGS) {
                let _ = write!(out, "<li>{}/{} [{}] {}</li>", esc(&e.project), esc(&e.env), esc(&f.rule), esc(&f.message));
            }
            if e.findings.len() > SHOWN_FINDINGS {
                let _ = write!(
                    out,
                    "<li>{}/{}: and {} more (<code>pgtier audit {} {}</code> lists them all)</li>",
                    esc(&e.project),
                    esc(&e.env),
                    e.findings.len() - SHOWN_FINDINGS,
                    esc(&e.project),
                    esc(&e.env)
                );
            }
        }
        out += "</ul>";
    }
    out += "<p class=\"legend\">";
    for t in TierName::ALL {
        let _ = write!(out, "<span><i style=\"background:{}\"></i>{}</span>", tier_color(Some(&t)), t.as_str());
    }
    out += "<span><i style=\"background:#fff;border:2px solid #e36209;width:8px;height:8px\"></i>locked</span>\
            <span><i style=\"background:#9ecae1;opacity:.45\"></i>archive class (Glacier, Deep Archive)</span>\
            <span><i style=\"background:#1a7f37;border-radius:6px\"></i>drill passed</span>\
            <span><i style=\"background:#cf222e;border-radius:6px\"></i>drill failed</span></p>";
    for e in &r.envs {
        env_section(&mut out, e, r.since, r.generated_at);
    }
    out += "</body></html>\n";
    out
}

/// Findings shown per project/env; the rest are counted.
const SHOWN_FINDINGS: usize = 20;

const CELL: i64 = 3;
const LEFT: i64 = 90;

fn env_section(out: &mut String, e: &EnvReport, since: NaiveDate, now: DateTime<Utc>) {
    let id = format!("{}-{}", e.project, e.env).replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_");
    let _ = write!(
        out,
        "<section id=\"env-{}\" data-project=\"{}\" data-env=\"{}\"><h2>{}/{}</h2>",
        esc(&id),
        esc(&e.project),
        esc(&e.env),
        esc(&e.project),
        esc(&e.env)
    );
    let newest = match (&e.newest, e.newest_at) {
        (Some(n), Some(at)) => format!("newest {} ({})", esc(n), crate::ui::ago(at, now)),
        _ => "<span class=\"bad\">no backup on this host</span>".into(),
    };
    let drills_failed: u32 = e.days.iter().map(|d| d.drills_failed).sum();
    let drills_passed: u32 = e.days.iter().map(|d| d.drills_passed).sum();
    let _ = write!(
        out,
        "<p class=\"meta\">{} backup(s) here; {newest}; drills this year: <span class=\"ok\">{drills_passed} passed</span>, <span class=\"{}\">{drills_failed} failed</span>; {} finding(s).</p>",
        e.backups,
        if drills_failed > 0 { "bad" } else { "meta" },
        e.findings.len()
    );
    for (name, why) in &e.unreadable {
        let _ = write!(out, "<p class=\"warn\">{}: could not be read: {}</p>", esc(name), esc(why));
    }
    timeline(out, e, since);
    let sizes: Vec<(NaiveDate, f64)> = e.days.iter().filter(|d| d.size > 0).map(|d| (d.date, d.size as f64)).collect();
    chart(out, "size", "size of the day's newest backup", &sizes, since, crate::ui::human_size);
    let rows: Vec<(NaiveDate, f64)> = e.days.iter().filter_map(|d| Some((d.date, d.rows? as f64))).collect();
    chart(out, "rows", "rows in the day's newest backup", &rows, since, |n| n.to_string());
    out.push_str("</section>");
}

/// One row per place (here, then each destination), one column per day; then the drills.
fn timeline(out: &mut String, e: &EnvReport, since: NaiveDate) {
    let rows: Vec<String> = std::iter::once("local".to_string()).chain(e.destinations.iter().cloned()).collect();
    let height = (rows.len() as i64 + 1) * 16 + 18;
    let width = LEFT + super::DAYS * CELL + 10;
    let _ = write!(
        out,
        "<svg class=\"timeline\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"backups by day\">"
    );
    // Month ticks.
    let mut d = since;
    while d <= since + Duration::days(super::DAYS - 1) {
        if d.format("%d").to_string() == "01" {
            let x = LEFT + (d - since).num_days() * CELL;
            let _ = write!(
                out,
                "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{}\">{}</text>",
                height - 14,
                x + 2,
                height - 3,
                d.format("%b")
            );
        }
        d += Duration::days(1);
    }
    for (i, name) in rows.iter().enumerate() {
        let y = i as i64 * 16 + 2;
        let _ = write!(out, "<text x=\"0\" y=\"{}\" class=\"row\" data-row=\"{}\">{}</text>", y + 11, esc(name), esc(name));
        for day in &e.days {
            cell(out, day, since, y, if i == 0 { None } else { Some(name.as_str()) });
        }
    }
    let y = rows.len() as i64 * 16 + 2;
    let _ = write!(out, "<text x=\"0\" y=\"{}\">drills</text>", y + 11);
    for day in e.days.iter().filter(|d| d.drills_passed + d.drills_failed > 0) {
        let x = LEFT + (day.date - since).num_days() * CELL + 1;
        let color = if day.drills_failed > 0 { "#cf222e" } else { "#1a7f37" };
        let _ = write!(
            out,
            "<circle cx=\"{x}\" cy=\"{}\" r=\"3\" fill=\"{color}\"><title>{}: {} drill(s) passed, {} failed</title></circle>",
            y + 7,
            day.date,
            day.drills_passed,
            day.drills_failed
        );
    }
    out.push_str("</svg>");
}

fn cell(out: &mut String, day: &Day, since: NaiveDate, y: i64, destination: Option<&str>) {
    let x = LEFT + (day.date - since).num_days() * CELL;
    let (tiers, detail, archived, locked) = match destination {
        None if day.local => (&day.tiers, "here".to_string(), false, None),
        None => return,
        Some(name) => match day.offsite.get(name) {
            Some(o) => (
                &o.tiers,
                format!("on {name}: {}", o.storage_classes.join(", ")),
                o.storage_classes.iter().all(|c| c.contains("GLACIER") || c.contains("DEEP_ARCHIVE")),
                o.locked_until,
            ),
            None => return,
        },
    };
    let top = tiers.iter().max();
    let lock = locked.map(|u| format!(", locked until {}", u.format("%Y-%m-%d"))).unwrap_or_default();
    let opacity = if archived { " opacity=\".45\"" } else { "" };
    let stroke = if locked.is_some() { " stroke=\"#e36209\" stroke-width=\"1\"" } else { "" };
    let tier_names: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
    let _ = write!(
        out,
        "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL}\" height=\"13\" fill=\"{}\"{opacity}{stroke}><title>{}: {} ({}), {detail}{lock}</title></rect>",
        tier_color(top),
        day.date,
        esc(&day.newest),
        tier_names.join(", ")
    );
}

/// A line chart of one value per day.
fn chart(out: &mut String, class: &str, label: &str, points: &[(NaiveDate, f64)], since: NaiveDate, fmt: impl Fn(u64) -> String) {
    if points.is_empty() {
        return;
    }
    let width = LEFT + super::DAYS * CELL + 10;
    let (h, top) = (70i64, 6i64);
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let y = |v: f64| top + h - ((v / max) * h as f64).round() as i64;
    let mut path = String::new();
    for (d, v) in points {
        let _ = write!(path, "{},{} ", LEFT + (*d - since).num_days() * CELL + 1, y(*v));
    }
    let _ = write!(
        out,
        "<svg class=\"chart {class}\" width=\"{width}\" height=\"{}\" viewBox=\"0 0 {width} {}\" role=\"img\" aria-label=\"{label}\"><text x=\"0\" y=\"{}\">{class}</text><text x=\"0\" y=\"{}\">{}</text>\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ccc\"/><polyline fill=\"none\" stroke=\"#4292c6\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        h + top + 8,
        h + top + 8,
        top + 10,
        top + 24,
        esc(&fmt(max as u64)),
        top + h,
        width - 10,
        top + h,
        path.trim_end()
    );
}
