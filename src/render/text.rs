//! Small text helpers shared by the renderers: counts with their noun,
//! sparklines and rates as a person reads them.

/// "1 process", "3 processes".
pub fn plural(n: u64, word: &str) -> String {
    match (n, word.ends_with('s')) {
        (1, _) => format!("1 {word}"),
        (_, true) => format!("{n} {word}es"),
        (_, false) => format!("{n} {word}s"),
    }
}

/// The counts as a line of block characters, lowest to highest: `▁▃▅█`.
pub fn sparkline(counts: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (min, max) = (
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
    );
    let span = (max - min).max(1);
    counts
        .iter()
        .map(|&c| {
            let step = ((c - min) * 7 + span / 2) / span;
            BARS[usize::try_from(step).unwrap_or(7).min(7)]
        })
        .collect()
}

/// A change per second as a signed rate per minute: `+12/min`, `-0.5/min`, `±0/min`.
pub fn per_minute(per_s: f64) -> String {
    let m = per_s * 60.0;
    if m.abs() < 0.05 {
        "±0/min".to_string()
    } else if m.abs() >= 10.0 {
        format!("{m:+.0}/min")
    } else {
        format!("{m:+.1}/min")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "process"), "1 process");
        assert_eq!(plural(3, "process"), "3 processes");
        assert_eq!(plural(0, "problem"), "0 problems");
    }

    #[test]
    fn sparklines_and_rates() {
        assert_eq!(sparkline(&[0, 5, 10, 15]), "▁▃▆█");
        assert_eq!(sparkline(&[4, 4, 4]), "▁▁▁");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(per_minute(0.2), "+12/min");
        assert_eq!(per_minute(-0.01), "-0.6/min");
        assert_eq!(per_minute(0.0), "±0/min");
    }
}
