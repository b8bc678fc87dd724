//! The HdrHistogram percentile distribution text (`.hgrm`): written from a histogram, parsed back.
//!
//! This is the classic format of HdrHistogram's `outputPercentileDistribution` (Java, C, Go print the same),
//! which the HdrHistogram plotter and most tooling read:
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!       12.479 0.000000000000          1           1.00
//!       15.583 0.100000000000        104           1.11
//!          ...
//!      811.007 1.000000000000       1000
//! #[Mean    =       21.512, StdDeviation   =       30.140]
//! #[Max     =      811.007, Total count    =         1000]
//! #[Buckets =           22, SubBuckets     =         2048]
//! ```
//!
//! Values are divided by a unit ratio (the histogram records nanoseconds; `1000.0` prints microseconds);
//! percentiles are quantiles in `0..=1` with 12 decimals; the points are the histogram's quantile iteration
//! with 5 ticks per half distance (as the Java default); the last line (quantile 1) has no `1/(1-q)` column.
//! The value precision is the histogram's significant digits.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Quantile iteration ticks per half distance, the HdrHistogram default for this output.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Writes `histogram` as `.hgrm` text, values divided by `unit_ratio` (1000.0: nanoseconds to microseconds).
///
/// # Errors
/// Any error of `out`.
pub fn write_hgrm<W: Write>(histogram: &Histogram<u64>, unit_ratio: f64, out: &mut W) -> io::Result<()> {
    let precision = usize::from(histogram.sigfig());
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !histogram.is_empty() {
        for step in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += step.count_since_last_iteration();
            let value = step.value_iterated_to() as f64 / unit_ratio;
            let quantile = step.quantile_iterated_to();
            if quantile < 1.0 {
                writeln!(
                    out,
                    "{value:>12.precision$} {quantile:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - quantile)
                )?;
            } else {
                writeln!(out, "{value:>12.precision$} {quantile:>2.12} {total:>10}")?;
            }
        }
    }
    let mean = if histogram.is_empty() {
        0.0
    } else {
        histogram.mean() / unit_ratio
    };
    let stdev = if histogram.is_empty() {
        0.0
    } else {
        histogram.stdev() / unit_ratio
    };
    let max = histogram.max() as f64 / unit_ratio;
    writeln!(
        out,
        "#[Mean    = {mean:>12.precision$}, StdDeviation   = {stdev:>12.precision$}]"
    )?;
    writeln!(
        out,
        "#[Max     = {max:>12.precision$}, Total count    = {:>12}]",
        histogram.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        histogram.buckets(),
        sub_bucket_count(histogram.sigfig())
    )?;
    Ok(())
}

/// The `.hgrm` text of `histogram` as a string.
pub fn hgrm_string(histogram: &Histogram<u64>, unit_ratio: f64) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_hgrm(histogram, unit_ratio, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// HdrHistogram's sub-bucket count for `sigfig` significant digits: the power of two at or above
/// `2 * 10^sigfig`.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest_single_unit = 2 * 10u64.pow(u32::from(sigfig));
    largest_single_unit.next_power_of_two()
}

/// One line of the distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HgrmPoint {
    /// Value, in the file's unit.
    pub value: f64,
    /// Quantile, `0..=1`.
    pub quantile: f64,
    /// Samples at or below the value.
    pub total_count: u64,
}

/// A parsed `.hgrm` text.
#[derive(Clone, Debug, PartialEq)]
pub struct Hgrm {
    /// The distribution lines, in file order (quantile non-decreasing).
    pub points: Vec<HgrmPoint>,
    /// Mean, in the file's unit.
    pub mean: f64,
    /// Largest value, in the file's unit.
    pub max: f64,
    /// Samples.
    pub total_count: u64,
}

/// Why a text is not a `.hgrm` distribution.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HgrmError {
    /// The header line is missing.
    #[error("hgrm: no header line (Value Percentile TotalCount 1/(1-Percentile))")]
    NoHeader,
    /// A line does not parse.
    #[error("hgrm: line {line}: {problem}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The `#[Mean`/`#[Max` footer is missing.
    #[error("hgrm: no #[Mean/#[Max footer")]
    NoFooter,
}

/// Parses `.hgrm` text; checks that quantiles and counts never decrease and that the last count is the total.
///
/// # Errors
/// [`HgrmError`] naming the first problem.
pub fn parse_hgrm(text: &str) -> Result<Hgrm, HgrmError> {
    let mut lines = text.lines().enumerate();
    let header = lines.by_ref().find(|(_, l)| !l.trim().is_empty());
    match header {
        Some((_, l)) if l.split_whitespace().next() == Some("Value") => {}
        _ => return Err(HgrmError::NoHeader),
    }
    let mut points: Vec<HgrmPoint> = Vec::new();
    let (mut mean, mut max, mut total_count) = (None, None, None);
    for (index, line) in lines {
        let bad = |problem: &str| HgrmError::BadLine {
            line: index + 1,
            problem: problem.to_owned(),
        };
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(footer) = trimmed.strip_prefix("#[") {
            let footer = footer.trim_end_matches(']');
            for part in footer.split(',') {
                let (key, value) = part.split_once('=').ok_or_else(|| bad("footer without '='"))?;
                let value = value.trim();
                match key.trim() {
                    "Mean" => mean = Some(value.parse::<f64>().map_err(|_| bad("bad Mean"))?),
                    "Max" => max = Some(value.parse::<f64>().map_err(|_| bad("bad Max"))?),
                    "Total count" => {
                        total_count = Some(value.parse::<u64>().map_err(|_| bad("bad Total count"))?);
                    }
                    _ => {}
                }
            }
            continue;
        }
        let mut fields = trimmed.split_whitespace();
        let mut next = |name: &str| fields.next().ok_or_else(|| bad(&format!("no {name} column")));
        let value = next("Value")?.parse::<f64>().map_err(|_| bad("bad Value"))?;
        let quantile = next("Percentile")?
            .parse::<f64>()
            .map_err(|_| bad("bad Percentile"))?;
        let count = next("TotalCount")?
            .parse::<u64>()
            .map_err(|_| bad("bad TotalCount"))?;
        if !(0.0..=1.0).contains(&quantile) {
            return Err(bad("percentile outside 0..1"));
        }
        if let Some(last) = points.last()
            && (quantile < last.quantile || count < last.total_count || value < last.value)
        {
            return Err(bad("value, percentile or count decreases"));
        }
        points.push(HgrmPoint {
            value,
            quantile,
            total_count: count,
        });
    }
    let (Some(mean), Some(max), Some(total_count)) = (mean, max, total_count) else {
        return Err(HgrmError::NoFooter);
    };
    if let Some(last) = points.last()
        && last.total_count != total_count
    {
        return Err(HgrmError::BadLine {
            line: 0,
            problem: format!(
                "last TotalCount {} is not the Total count {total_count}",
                last.total_count
            ),
        });
    }
    Ok(Hgrm {
        points,
        mean,
        max,
        total_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram() -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap(); // 1 us .. 1 ms in ns
        }
        h
    }

    #[test]
    fn writes_the_classic_layout_and_parses_back() {
        let h = histogram();
        let text = hgrm_string(&h, 1000.0);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines.next().unwrap(), "");
        let first = lines.next().unwrap();
        assert_eq!(first, "       1.000 0.000000000000          1           1.00");
        assert!(text.contains("#[Buckets = "));
        assert!(text.contains("SubBuckets     =         2048]"));

        let parsed = parse_hgrm(&text).unwrap();
        assert_eq!(parsed.total_count, 1000);
        assert_eq!(parsed.points.last().unwrap().quantile, 1.0);
        assert_eq!(parsed.points.last().unwrap().total_count, 1000);
        // Values are microseconds; the max is 1000 us within the histogram's 3 digits.
        assert!((parsed.max - 1000.0).abs() <= 1.0, "{}", parsed.max);
        assert!((parsed.mean - 500.5).abs() <= 1.0, "{}", parsed.mean);
        // The median line sits at 500 us within the precision.
        let median = parsed.points.iter().find(|p| p.quantile >= 0.5).unwrap();
        assert!((median.value - 500.0).abs() <= 1.0, "{}", median.value);
        // The last line has three columns, the others four.
        let last_line = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
        assert_eq!(last_line.split_whitespace().count(), 3);
    }

    #[test]
    fn an_empty_histogram_still_parses() {
        let h = Histogram::<u64>::new(3).unwrap();
        let parsed = parse_hgrm(&hgrm_string(&h, 1.0)).unwrap();
        assert_eq!(parsed.total_count, 0);
        assert!(parsed.points.is_empty());
    }

    #[test]
    fn rejects_broken_text() {
        assert_eq!(parse_hgrm("hello"), Err(HgrmError::NoHeader));
        let text = hgrm_string(&histogram(), 1000.0);
        let no_footer: String = text
            .lines()
            .filter(|l| !l.starts_with("#[Max"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse_hgrm(&no_footer), Err(HgrmError::NoFooter));
        let garbled = text.replacen("0.000000000000", "x", 1);
        assert!(matches!(parse_hgrm(&garbled), Err(HgrmError::BadLine { .. })));
        // Decreasing counts.
        let lines: Vec<&str> = text.lines().collect();
        let mut swapped = lines.clone();
        swapped.swap(3, 4);
        assert!(matches!(
            parse_hgrm(&swapped.join("\n")),
            Err(HgrmError::BadLine { .. })
        ));
    }
}
