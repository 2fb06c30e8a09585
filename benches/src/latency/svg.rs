//! A hand-written SVG percentile plot, in the style of HdrHistogram's:
//! x is the percentile on a log scale of 1/(1−p) (0, 90, 99, 99.9, 99.99 …
//! equally spaced), y the latency on a log scale (decades labelled in ns,
//! µs, ms), one curve per run, a legend. No dependencies.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// The plot of `series` (label, histogram in ns) titled `title`.
pub fn plot(title: &str, series: &[(String, &Histogram<u64>)]) -> String {
    let series: Vec<_> = series.iter().filter(|(_, h)| !h.is_empty()).collect();
    // x: nines = log10(1/(1-p)); the max sits at log10(count).
    let nines_max = series
        .iter()
        .map(|(_, h)| (h.len() as f64).log10().ceil())
        .fold(2.0_f64, f64::max)
        .min(7.0);
    let lo = series
        .iter()
        .map(|(_, h)| h.min().max(1))
        .min()
        .unwrap_or(1);
    let hi = series
        .iter()
        .map(|(_, h)| h.max().max(1))
        .max()
        .unwrap_or(1000);
    let y_lo = (lo as f64).log10().floor();
    let y_hi = ((hi as f64).log10().ceil()).max(y_lo + 1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |nines: f64| LEFT + nines.clamp(0.0, nines_max) / nines_max * plot_w;
    let y_of = |ns: u64| {
        let v = (ns.max(1) as f64).log10();
        TOP + plot_h - (v - y_lo) / (y_hi - y_lo) * plot_h
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="13">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Grid and x labels.
    for n in 0..=nines_max as u32 {
        let x = x_of(f64::from(n));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 20.0,
            percentile_label(n)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0
    );
    // y decades.
    let mut d = y_lo as i32;
    while f64::from(d) <= y_hi {
        let ns = 10u64.saturating_pow(d.max(0) as u32);
        let y = y_of(ns);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            ns_label(ns)
        );
        d += 1;
    }
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency (log scale)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    // Curves, then the legend on a white box above them.
    let mut legend = String::new();
    let mut legend_chars = 0usize;
    for (i, (label, h)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let count = h.len() as f64;
        let mut points = String::new();
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let nines = if q >= 1.0 {
                count.log10()
            } else {
                (1.0 / (1.0 - q)).log10().min(count.log10())
            };
            let value = v.value_iterated_to().min(h.max());
            let _ = write!(points, "{:.1},{:.1} ", x_of(nines), y_of(value));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.trim_end()
        );
        // Legend.
        let ly = TOP + 18.0 + 20.0 * i as f64;
        let _ = writeln!(
            legend,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/>"#,
            LEFT + 14.0,
            LEFT + 40.0
        );
        let text = format!(
            "{} (p50 {}, p99 {})",
            label,
            ns_label(h.value_at_quantile(0.5)),
            ns_label(h.value_at_quantile(0.99))
        );
        legend_chars = legend_chars.max(text.chars().count());
        let _ = writeln!(
            legend,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 48.0,
            ly + 4.0,
            escape(&text)
        );
    }
    if !series.is_empty() {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="white" fill-opacity="0.9" stroke="#999"/>"##,
            LEFT + 6.0,
            TOP + 6.0,
            56.0 + 7.4 * legend_chars as f64,
            20.0 * series.len() as f64 + 4.0
        );
        s.push_str(&legend);
    }
    s.push_str("</svg>\n");
    s
}

fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".to_owned(),
        n => format!("{}%", 100.0 - 100.0 / 10f64.powi(n as i32)),
    }
}

fn ns_label(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{} s", trim(ns as f64 / 1e9))
    } else if ns >= 1_000_000 {
        format!("{} ms", trim(ns as f64 / 1e6))
    } else if ns >= 1_000 {
        format!("{} µs", trim(ns as f64 / 1e3))
    } else {
        format!("{ns} ns")
    }
}

fn trim(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_one_svg_with_a_curve_and_a_legend_entry_per_run() {
        let mut a = super::super::histogram();
        let mut b = super::super::histogram();
        for v in 1..=20_000u64 {
            a.record(300 + v % 700).expect("in range");
            b.record(2_000 + (v * 37) % 50_000).expect("in range");
        }
        let svg = plot(
            "t <1>",
            &[("100k/s".to_owned(), &a), ("1M/s".to_owned(), &b)],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("100k/s (p50"));
        assert!(svg.contains("99.99%"));
        assert!(svg.contains("t &lt;1&gt;"));
        assert_eq!(percentile_label(3), "99.9%");
        assert_eq!(ns_label(1_500), "1.5 µs");
    }
}
