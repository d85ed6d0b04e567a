//! Charts drawn by the server as inline SVG (no chart service, no script): attempts per
//! bucket, delivered over failed, and the attempts' latency p50/p99.

use herald_app::WebhookStats;
use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

fn label(t: time::OffsetDateTime, with_day: bool) -> String {
    if with_day {
        format!("{:02}-{:02} {:02}:{:02}", u8::from(t.month()), t.day(), t.hour(), t.minute())
    } else {
        format!("{:02}:{:02}", t.hour(), t.minute())
    }
}

/// Axis frame, the y scale's top value and every `step`-th bucket's label.
fn frame(out: &mut String, stats: &WebhookStats, top: u64, unit: &str) {
    let n = stats.buckets.len().max(1);
    let plot_w = W - LEFT;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{y0}" x2="{W}" y2="{y0}" stroke="#9aa3ad"/><text x="{tx}" y="{ty}" text-anchor="end" class="axis">{top}{unit}</text><text x="{tx}" y="{y0}" text-anchor="end" class="axis">0</text>"##,
        y0 = H - BOTTOM,
        tx = LEFT - 4.0,
        ty = TOP + 10.0,
    );
    let step = (n / 6).max(1);
    let with_day = stats.bucket.as_secs() >= 86_400 || (stats.until - stats.since).whole_hours() > 24;
    for (i, b) in stats.buckets.iter().enumerate().step_by(step) {
        let x = LEFT + plot_w * i as f64 / n as f64;
        let _ = write!(out, r#"<text x="{x:.1}" y="{}" class="axis">{}</text>"#, H - 6.0, label(b.start, with_day));
    }
}

/// Stacked bars per bucket: delivered (bottom) and failed (top). Each bar group carries
/// its counts as data attributes and a tooltip.
pub(crate) fn attempts_svg(stats: &WebhookStats) -> String {
    let n = stats.buckets.len().max(1);
    let top = stats.buckets.iter().map(|b| b.delivered + b.failed).max().unwrap_or(0).max(1);
    let plot_h = H - BOTTOM - TOP;
    let slot = (W - LEFT) / n as f64;
    let bar = (slot * 0.8).max(1.0);
    let mut out = String::with_capacity(256 + 200 * n);
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="Attempts per {} bucket: delivered and failed">"#,
        humantime::format_duration(stats.bucket)
    );
    frame(&mut out, stats, top, "");
    for (i, b) in stats.buckets.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let hd = plot_h * b.delivered as f64 / top as f64;
        let hf = plot_h * b.failed as f64 / top as f64;
        let base = H - BOTTOM;
        let _ = write!(
            out,
            r#"<g class="bucket" data-start="{start}" data-delivered="{d}" data-failed="{f}"><title>{start}: {d} delivered, {f} failed</title><rect class="ok" x="{x:.1}" y="{yd:.1}" width="{bar:.1}" height="{hd:.1}"/><rect class="bad" x="{x:.1}" y="{yf:.1}" width="{bar:.1}" height="{hf:.1}"/></g>"#,
            start = herald_domain::rfc3339(b.start),
            d = b.delivered,
            f = b.failed,
            yd = base - hd,
            yf = base - hd - hf,
        );
    }
    out.push_str("</svg>");
    out
}

/// Two lines: the attempts' p50 and p99 duration per bucket (gaps where none).
pub(crate) fn latency_svg(stats: &WebhookStats) -> String {
    let n = stats.buckets.len().max(1);
    let top = stats.buckets.iter().filter_map(|b| b.p99_ms).max().unwrap_or(0).max(1);
    let plot_h = H - BOTTOM - TOP;
    let slot = (W - LEFT) / n as f64;
    let mut out = String::with_capacity(256 + 60 * n);
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="Attempt latency p50 and p99 in milliseconds">"#
    );
    frame(&mut out, stats, top, " ms");
    for (class, pick) in [("p99", 1usize), ("p50", 0usize)] {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, b) in stats.buckets.iter().enumerate() {
            let v = if pick == 0 { b.p50_ms } else { b.p99_ms };
            let Some(ms) = v else {
                pen_down = false;
                continue;
            };
            let x = LEFT + slot * (i as f64 + 0.5);
            let y = H - BOTTOM - plot_h * ms as f64 / top as f64;
            let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
            pen_down = true;
            let _ = write!(
                out,
                r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="2.5"><title>{class} {ms} ms</title></circle>"#
            );
        }
        if !path.is_empty() {
            let _ = write!(out, r#"<path class="{class}" d="{}"/>"#, path.trim_end());
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_app::StatsBucket;
    use std::time::Duration;

    fn stats() -> WebhookStats {
        let t = herald_domain::from_millis(0);
        let h = Duration::from_secs(3600);
        let b = |i: u32, delivered, failed, p| StatsBucket {
            start: t + h * i,
            delivered,
            failed,
            p50_ms: p,
            p99_ms: p.map(|v| v * 2),
        };
        WebhookStats {
            since: t,
            until: t + h * 3,
            bucket: h,
            buckets: vec![b(0, 3, 1, Some(10)), b(1, 0, 0, None), b(2, 1, 0, Some(20))],
            totals: StatsBucket::empty(t),
        }
    }

    #[test]
    fn bars_carry_their_counts_and_scale_to_the_largest() {
        let svg = attempts_svg(&stats());
        assert_eq!(svg.matches(r#"<g class="bucket""#).count(), 3);
        assert!(svg.contains(r#"data-delivered="3" data-failed="1""#));
        assert!(svg.contains("<title>1970-01-01T00:00:00") && svg.contains(": 3 delivered, 1 failed</title>"), "{svg}");
        // The tallest stack (4) fills the plot height.
        assert!(svg.contains(r#"class="bad" x="#) && svg.contains(r#"y="8.0""#), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn latency_lines_break_where_a_bucket_has_no_attempts() {
        let svg = latency_svg(&stats());
        assert_eq!(svg.matches("<path").count(), 2);
        assert_eq!(svg.matches(" M").count() + svg.matches("\"M").count(), 4, "two segments per line: {svg}");
        assert!(svg.contains("p99 40 ms"));
    }
}
