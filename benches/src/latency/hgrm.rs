//! HdrHistogram percentile-distribution text (`.hgrm`), the format of
//! `HistogramLogProcessor` / `outputPercentileDistribution` that the
//! HdrHistogram plotter (hdrhistogram.github.io/HdrHistogram/plotFiles.html)
//! reads: values in microseconds, 5 ticks per half distance.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Values are written in microseconds (the histogram holds ns).
const SCALE: f64 = 1_000.0;

/// The percentile distribution of `h` (ns) as `.hgrm` text (µs).
pub fn write(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to().min(h.max()) as f64 / SCALE;
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:>12.3} {q:>2.12} {total:>10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

/// One line of a parsed `.hgrm` file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    /// µs.
    pub value: f64,
    pub percentile: f64,
    pub total_count: u64,
}

/// A parsed `.hgrm` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub lines: Vec<Line>,
    /// µs.
    pub mean: f64,
    /// µs.
    pub max: f64,
    pub total_count: u64,
}

/// Parses `.hgrm` text and checks it: a header, lines whose values and
/// percentiles never decrease, counts that never decrease and end at the
/// footer's total, the last percentile 1.
///
/// # Errors
/// A description of the first problem found.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut lines = Vec::new();
    let (mut mean, mut max, mut total) = (None, None, None);
    let mut header = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("Value") {
            header = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("#[") {
            let rest = rest.trim_end_matches(']');
            for field in rest.split(',') {
                let (key, value) = field
                    .split_once('=')
                    .ok_or_else(|| format!("line {}: footer field {field:?}", n + 1))?;
                let value = value.trim();
                match key.trim() {
                    "Mean" => mean = value.parse::<f64>().ok(),
                    "Max" => max = value.parse::<f64>().ok(),
                    "Total count" => total = value.parse::<u64>().ok(),
                    _ => {}
                }
            }
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 3 && cols.len() != 4 {
            return Err(format!("line {}: {} columns", n + 1, cols.len()));
        }
        let bad = |what: &str| format!("line {}: bad {what}", n + 1);
        let parsed = Line {
            value: cols[0].parse().map_err(|_| bad("value"))?,
            percentile: cols[1].parse().map_err(|_| bad("percentile"))?,
            total_count: cols[2].parse().map_err(|_| bad("count"))?,
        };
        if let Some(prev) = lines.last() {
            let prev: &Line = prev;
            if parsed.value < prev.value
                || parsed.percentile < prev.percentile
                || parsed.total_count < prev.total_count
            {
                return Err(format!("line {}: decreases", n + 1));
            }
        }
        if !(0.0..=1.0).contains(&parsed.percentile) {
            return Err(bad("percentile range"));
        }
        lines.push(parsed);
    }
    if !header {
        return Err("no header".to_owned());
    }
    let (Some(mean), Some(max), Some(total_count)) = (mean, max, total) else {
        return Err("footer incomplete".to_owned());
    };
    if let Some(last) = lines.last() {
        if last.total_count != total_count || last.percentile != 1.0 {
            return Err("the last line is not the whole count at percentile 1".to_owned());
        }
    } else if total_count != 0 {
        return Err("no lines".to_owned());
    }
    Ok(Parsed {
        lines,
        mean,
        max,
        total_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_parse_back_with_the_same_counts() {
        let mut h = super::super::histogram();
        for v in 0..10_000u64 {
            h.record(500 + (v * v) % 90_000).expect("in range");
        }
        let parsed = parse(&write(&h)).expect("valid .hgrm");
        assert_eq!(parsed.total_count, 10_000);
        assert!((parsed.max - h.max() as f64 / 1000.0).abs() < 1e-3);
        assert!(parsed.lines.len() > 20);
        let p50 = parsed
            .lines
            .iter()
            .find(|l| l.percentile >= 0.5)
            .expect("a median line");
        assert!((p50.value * 1000.0 - h.value_at_quantile(0.5) as f64).abs() < 100.0);
        assert!(parse("garbage").is_err());
        assert!(parse(&write(&h).replace("Total count", "Count")).is_err());
    }
}
