//! The report as one self-contained HTML page: inline CSS and SVG, no script, no font, no image
//! fetched from anywhere (a Content-Security-Policy says so to the browser too), so it opens
//! from a mail or a file share as it is. The charts scale to the page's width (an SVG viewBox,
//! no fixed pixel size), every fact is in text a printed or mailed page keeps (the tooltips only
//! repeat it), and a print style keeps the colours and each project/env on its own pages.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use crate::ui::html::{CSS, esc};

use super::{Day, DrillRef, EnvReport, Holding, Place, Report};
use crate::config::TierName;

fn tier_color(t: Option<&TierName>) -> &'static str {
    match t {
        Some(TierName::Yearly) => "#3f007d",
        Some(TierName::Monthly) => "#08519c",
        Some(TierName::Weekly) => "#4292c6",
        Some(TierName::Daily) => "#9ecae1",
        Some(TierName::Hourly) => "#deebf7",
        None => "#bdbdbd",
    }
}

/// Renders the whole page.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let today = r.generated_at.date_naive();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pgtier report: {host}</title><style>{CSS}</style></head><body>\
         <h1>pgtier report: {host}</h1><p class=\"meta\">{} project/env(s), generated {} UTC; the timelines show {} to {} ({} days).</p>",
        r.envs.len(),
        r.generated_at.format("%Y-%m-%d %H:%M"),
        r.since,
        today,
        r.span_days,
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
    out += "<p class=\"legend\">Timelines: one bar a day with a backup, coloured by its highest tier: ";
    for t in TierName::ALL {
        let _ = write!(out, "<span><i style=\"background:{}\"></i>{}</span>", tier_color(Some(&t)), t.as_str());
    }
    out += "<span><i style=\"background:#fff;border:2px solid #e36209;width:8px;height:8px\"></i>locked</span>\
            <span><i style=\"background:#9ecae1;opacity:.45\"></i>archive class (Glacier, Deep Archive)</span>\
            <span><i style=\"background:#1a7f37;border-radius:6px\"></i>drill passed</span>\
            <span><i style=\"background:#cf222e;border-radius:6px\"></i>drill failed</span></p>";
    let axis = Axis::new(r.since, r.span_days);
    for e in &r.envs {
        env_section(&mut out, e, &axis, r.generated_at);
    }
    out += "</body></html>\n";
    out
}

/// Findings shown per project/env; the rest are counted.
const SHOWN_FINDINGS: usize = 20;

/// The drawing's width in viewBox units: the browser scales it to the page.
const WIDTH: f64 = 960.0;
/// Room on the left of the charts for their value labels; the timeline's bars start there too.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 12.0;
const FONT: &str = "font-size=\"13\"";

/// The timeline's days mapped onto the drawing's width, with its dated ticks.
struct Axis {
    since: NaiveDate,
    days: i64,
}

impl Axis {
    fn new(since: NaiveDate, days: i64) -> Axis {
        Axis { since, days: days.max(1) }
    }

    fn cell(&self) -> f64 {
        (WIDTH - LEFT - RIGHT) / self.days as f64
    }

    /// Where `d`'s column starts.
    fn x(&self, d: NaiveDate) -> f64 {
        LEFT + (d - self.since).num_days() as f64 * self.cell()
    }

    /// The dates that get a tick and their labels: each Monday on a month or less, the 1st and
    /// 15th up to four months, else each month's 1st (with the year in January and on the first).
    fn ticks(&self) -> Vec<(NaiveDate, String)> {
        let mut out = Vec::new();
        let mut first = true;
        for i in 0..self.days {
            let d = self.since + Duration::days(i);
            let tick = if self.days <= 31 {
                d.weekday() == chrono::Weekday::Mon
            } else if self.days <= 120 {
                d.day() == 1 || d.day() == 15
            } else {
                d.day() == 1
            };
            if !tick {
                continue;
            }
            let label = if self.days > 120 && (first || d.month() == 1) {
                d.format("%b %Y").to_string()
            } else if self.days > 120 {
                d.format("%b").to_string()
            } else {
                d.format("%b %-d").to_string()
            };
            first = false;
            out.push((d, label));
        }
        out
    }

    /// Vertical tick lines from `top` to `bottom` and the dates under them.
    fn draw(&self, out: &mut String, top: f64, bottom: f64) {
        for (d, label) in self.ticks() {
            let x = self.x(d);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{top:.0}\" x2=\"{x:.1}\" y2=\"{:.0}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.0}\" {FONT}>{label}</text>",
                bottom + 4.0,
                x + 2.0,
                bottom + 16.0
            );
        }
    }
}

fn env_section(out: &mut String, e: &EnvReport, axis: &Axis, now: DateTime<Utc>) {
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
        "<p class=\"meta\">{} backup(s) here; {newest}; drills on the timeline: <span class=\"ok\">{drills_passed} passed</span>, <span class=\"{}\">{drills_failed} failed</span>; {} finding(s).</p>",
        e.backups,
        if drills_failed > 0 { "bad" } else { "meta" },
        e.findings.len()
    );
    for (name, why) in &e.unreadable {
        let _ = write!(out, "<p class=\"warn\">{}: could not be read: {}</p>", esc(name), esc(why));
    }
    if !e.failed_drills.is_empty() {
        out.push_str("<h3>Failed drills</h3><ul class=\"findings\">");
        for d in &e.failed_drills {
            let _ = write!(
                out,
                "<li>{} ({}), drilled {} from {}: {}</li>",
                esc(&d.backup),
                d.at.format("%Y-%m-%d %H:%M UTC"),
                crate::ui::ago(d.at, now),
                esc(&d.from),
                esc(d.error.as_deref().unwrap_or("failed"))
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("<h3>Tiers by place</h3>");
    tiers_table(out, &e.places, now);
    out.push_str("<h3>Backups by day</h3>");
    timeline(out, e, axis);
    let sizes: Vec<(NaiveDate, f64)> = e.days.iter().filter(|d| d.size > 0).map(|d| (d.date, d.size as f64)).collect();
    chart(out, "size", "Size of the day's newest backup", &sizes, axis, crate::ui::human_size);
    let rows: Vec<(NaiveDate, f64)> = e.days.iter().filter_map(|d| Some((d.date, d.rows? as f64))).collect();
    chart(out, "rows", "Rows in the day's newest backup", &rows, axis, |n| n.to_string());
    out.push_str("</section>");
}

/// Each place (this host, then each destination) and each tier that lives there: how many
/// copies, the newest and oldest, the storage class, the lock and the last drill, as text.
fn tiers_table(out: &mut String, places: &[Place], now: DateTime<Utc>) {
    out.push_str(
        "<div class=\"scroll\"><table class=\"tiers\"><thead><tr><th>Place</th><th>Tier</th><th>Copies</th><th>Newest</th>\
         <th>Oldest</th><th>Storage class</th><th>Lock</th><th>Last drill</th></tr></thead><tbody>",
    );
    for p in places {
        if p.tiers.is_empty() {
            let _ = write!(
                out,
                "<tr data-place=\"{}\"><td class=\"place\">{}</td><td colspan=\"7\" class=\"dim\">no tier lives here</td></tr>",
                esc(&p.name),
                esc(&p.label)
            );
            continue;
        }
        for (i, h) in p.tiers.iter().enumerate() {
            let _ = write!(out, "<tr data-place=\"{}\" data-tier=\"{}\">", esc(&p.name), h.tier.as_str());
            if i == 0 {
                let _ = write!(out, "<td class=\"place\" rowspan=\"{}\">{}</td>", p.tiers.len(), esc(&p.label));
            }
            holding_cells(out, h, now);
            out.push_str("</tr>");
        }
    }
    out.push_str("</tbody></table></div>");
}

fn holding_cells(out: &mut String, h: &Holding, now: DateTime<Utc>) {
    let when = |at: Option<DateTime<Utc>>| match at {
        Some(t) => format!("{} <span class=\"dim\">({})</span>", t.format("%Y-%m-%d %H:%M"), crate::ui::ago(t, now)),
        None => "<span class=\"dim\">none</span>".into(),
    };
    let lock = match (&h.lock, h.locked_until) {
        (Some(mode), Some(until)) => format!("{mode} until {}", until.format("%Y-%m-%d")),
        (Some(mode), None) => mode.clone(),
        _ => "<span class=\"dim\">none</span>".into(),
    };
    let classes = if h.storage_classes.is_empty() { "<span class=\"dim\">none</span>".into() } else { esc(&h.storage_classes.join(", ")) };
    let copies = if h.copies == 0 { "<span class=\"bad\">0</span>".to_string() } else { h.copies.to_string() };
    let _ = write!(
        out,
        "<td>{}</td><td class=\"num\">{copies}</td><td>{}</td><td>{}</td><td>{classes}</td><td>{lock}</td><td>{}</td>",
        h.tier.as_str(),
        when(h.newest_at),
        when(h.oldest_at),
        drill_text(h.last_drill.as_ref(), now)
    );
}

fn drill_text(d: Option<&DrillRef>, now: DateTime<Utc>) -> String {
    match d {
        None => "<span class=\"dim\">none yet</span>".into(),
        Some(d) => format!(
            "<span class=\"{}\">{}</span> {} <span class=\"dim\">({}, from {})</span>",
            if d.ok { "ok" } else { "bad" },
            if d.ok { "passed" } else { "failed" },
            d.at.format("%Y-%m-%d"),
            crate::ui::ago(d.at, now),
            esc(&d.from)
        ),
    }
}

/// Row geometry of the timeline: a label line, then the bars.
const ROW: f64 = 34.0;
const BAR: f64 = 14.0;

/// One row per place (here, then each destination), one column per day; then the drills.
fn timeline(out: &mut String, e: &EnvReport, axis: &Axis) {
    let rows = e.places.len() as f64 + 1.0;
    let bottom = rows * ROW;
    let height = bottom + 22.0;
    let _ = write!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height:.0}\" preserveAspectRatio=\"xMinYMin meet\" role=\"img\" aria-label=\"backups by day, {} to {}\">",
        axis.since,
        axis.since + Duration::days(axis.days - 1)
    );
    axis.draw(out, 0.0, bottom);
    for (i, place) in e.places.iter().enumerate() {
        let y = i as f64 * ROW;
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{:.0}\" {FONT} font-weight=\"600\" class=\"row\" data-row=\"{}\">{}</text>",
            y + 12.0,
            esc(&place.name),
            esc(&place.label)
        );
        for day in &e.days {
            cell(out, day, axis, y + 16.0, if i == 0 { None } else { Some(place.name.as_str()) });
        }
    }
    let y = e.places.len() as f64 * ROW;
    let _ = write!(out, "<text x=\"0\" y=\"{:.0}\" {FONT} font-weight=\"600\">drills</text>", y + 12.0);
    let r = (axis.cell() / 2.0).clamp(2.0, 5.0);
    for day in e.days.iter().filter(|d| d.drills_passed + d.drills_failed > 0) {
        let x = axis.x(day.date) + axis.cell() / 2.0;
        let color = if day.drills_failed > 0 { "#cf222e" } else { "#1a7f37" };
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{:.0}\" r=\"{r:.1}\" fill=\"{color}\"><title>{}: {} drill(s) passed, {} failed</title></circle>",
            y + 23.0,
            day.date,
            day.drills_passed,
            day.drills_failed
        );
    }
    out.push_str("</svg>");
}

fn cell(out: &mut String, day: &Day, axis: &Axis, y: f64, destination: Option<&str>) {
    let x = axis.x(day.date);
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
    // A gap between days while the cells are wide enough to show one.
    let w = if axis.cell() >= 4.0 { axis.cell() - 1.0 } else { axis.cell() };
    let _ = write!(
        out,
        "<rect x=\"{x:.1}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"{BAR}\" fill=\"{}\"{opacity}{stroke}><title>{}: {} ({}), {detail}{lock}</title></rect>",
        tier_color(top),
        day.date,
        esc(&day.newest),
        tier_names.join(", ")
    );
}

/// A line chart of one value per day, with its values on the left and its dates below.
fn chart(out: &mut String, class: &str, label: &str, points: &[(NaiveDate, f64)], axis: &Axis, fmt: impl Fn(u64) -> String) {
    if points.is_empty() {
        return;
    }
    let (h, top) = (90.0, 8.0);
    let bottom = top + h;
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let min = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y = |v: f64| bottom - (v / max) * h;
    let _ = write!(
        out,
        "<h3>{label}</h3><p class=\"meta\">from {} to {} (lowest {}, highest {}).</p>\
         <svg class=\"chart {class}\" viewBox=\"0 0 {WIDTH} {:.0}\" preserveAspectRatio=\"xMinYMin meet\" role=\"img\" aria-label=\"{label}\">",
        esc(&fmt(points[0].1 as u64)),
        esc(&fmt(points[points.len() - 1].1 as u64)),
        esc(&fmt(min as u64)),
        esc(&fmt(max as u64)),
        bottom + 22.0
    );
    axis.draw(out, top, bottom);
    for v in [0.0, max / 2.0, max] {
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"{2}\"/><text x=\"{3}\" y=\"{4:.1}\" {FONT} text-anchor=\"end\">{5}</text>",
            y(v),
            WIDTH - RIGHT,
            if v == 0.0 { "#999" } else { "#eee" },
            LEFT - 6.0,
            y(v) + 4.0,
            esc(&fmt(v as u64))
        );
    }
    let mid = axis.cell() / 2.0;
    let mut path = String::new();
    for (d, v) in points {
        let _ = write!(path, "{:.1},{:.1} ", axis.x(*d) + mid, y(*v));
    }
    let _ = write!(out, "<polyline fill=\"none\" stroke=\"#4292c6\" stroke-width=\"2\" points=\"{}\"/>", path.trim_end());
    // Dots where they stay apart, so one day's value is not a line of zero length.
    if axis.cell() >= 6.0 || points.len() == 1 {
        for (d, v) in points {
            let _ = write!(out, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#4292c6\"/>", axis.x(*d) + mid, y(*v));
        }
    }
    out.push_str("</svg>");
}
