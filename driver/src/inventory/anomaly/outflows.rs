//! Outflows judged as counts: each outflow's size in whole units against
//! a negative binomial whose mean is the item's local level (the outflows
//! around it, weekday-adjusted) and whose dispersion is fitted to the
//! item's own history; level shifts, up or down, by comparing the level of
//! the outflows after a point with the level before it.

use super::count_model::{ln_normal_upper_tail, NegativeBinomial};
use super::detector::{median, Anomaly, AnomalyKind, DetectorConfig, Movement};
use crate::ids::AggregateId;
use chrono::{DateTime, Datelike, Utc};

/// Outflows less probable than this are left out of the fit (they are
/// what is looked for, and would widen the model around themselves).
const LN_OUTLIER: f64 = -6.907_755_278_982_137; // ln 1e-3

/// Fewest outflows around a movement that make its expected size.
const MIN_NEIGHBOURS: usize = 4;

/// Fewest outflows after a candidate shift that are compared.
const MIN_SHIFT_WINDOW: usize = 14;

/// The findings among `movements` (outflows, in trend order).
pub(super) fn judge(
    config: &DetectorConfig,
    item: AggregateId,
    movements: &[Movement],
    years: f64,
) -> Vec<Anomaly> {
    if movements.len() < config.min_movements {
        return Vec::new();
    }
    let mut model = Model::new(config, movements, years);
    model.screen(3);
    let mut found = model.shifts(item, movements);
    model.screen(2);
    found.extend(model.spikes(item, movements));
    found
}

/// What the outflows of one item are expected to be.
struct Model<'a> {
    config: &'a DetectorConfig,
    /// Each movement's size for fitting: unannounced outflows only (those
    /// that consumed no reservation), or all of them where those are too
    /// few to fit.
    fit: Vec<Option<f64>>,
    /// Each movement's size as judged: units minus the reserved ones.
    judged: Vec<f64>,
    /// Each movement's reserved units.
    known: Vec<f64>,
    /// Each movement's weekday factor.
    factor: Vec<f64>,
    /// Whether weekday factors are in use.
    by_weekday: bool,
    /// Movements left out of the fit as too improbable.
    outlier: Vec<bool>,
    /// Where each segment starts (a level shift starts a new one).
    cuts: Vec<usize>,
    /// The dispersion.
    phi: f64,
    /// The years the history spans.
    years: f64,
}

impl<'a> Model<'a> {
    fn new(config: &'a DetectorConfig, movements: &[Movement], years: f64) -> Self {
        let unannounced = movements.iter().filter(|m| m.known == 0.0).count();
        let all = unannounced < config.min_movements;
        let fit: Vec<Option<f64>> = movements
            .iter()
            .map(|m| (all || m.known == 0.0).then_some(m.units))
            .collect();
        let factors = weekday_factors(movements, &fit);
        Model {
            config,
            judged: movements.iter().map(|m| m.units - m.known).collect(),
            known: movements.iter().map(|m| m.known).collect(),
            factor: movements
                .iter()
                .map(|m| factors.map_or(1.0, |f| f[weekday(m.at)]))
                .collect(),
            by_weekday: factors.is_some(),
            outlier: vec![false; movements.len()],
            cuts: vec![0],
            phi: 0.0,
            years,
            fit,
        }
    }

    /// The segment `[start, end)` that movement `i` is in.
    fn segment(&self, i: usize) -> (usize, usize) {
        let k = self.cuts.partition_point(|&c| c <= i);
        let start = self.cuts[k - 1];
        let end = self.cuts.get(k).copied().unwrap_or(self.fit.len());
        (start, end)
    }

    /// Whether movement `j` is part of the fit.
    fn usable(&self, j: usize) -> Option<f64> {
        self.fit[j].filter(|_| !self.outlier[j])
    }

    /// The expected size of movement `i` from the usable outflows within
    /// `level_window` of it in its segment (not itself), weekday-adjusted:
    /// `(level, neighbours)`.
    fn level(&self, i: usize) -> Option<(f64, usize)> {
        let (start, end) = self.segment(i);
        let w = self.config.level_window;
        let (mut units, mut weight, mut count) = (0.0, 0.0, 0);
        for j in i.saturating_sub(w).max(start)..i.saturating_add(w + 1).min(end) {
            if j == i {
                continue;
            }
            if let Some(f) = self.usable(j) {
                units += f;
                weight += self.factor[j];
                count += 1;
            }
        }
        (count >= MIN_NEIGHBOURS && weight > 0.0).then(|| (units / weight, count))
    }

    /// The count distribution of movement `i`'s size, if it can be judged.
    /// The level is an estimate from `count` neighbours: its own variance
    /// (about `(1/mean + phi) mean² / count`) widens the dispersion. Where
    /// the movement consumed reservations, `announced_spill` of the reserved
    /// units more is expected, give or take as much (a campaign announced by
    /// its pre-orders brings walk-ins with it).
    fn expected(&self, i: usize) -> Option<(NegativeBinomial, usize)> {
        self.level(i).map(|(level, count)| {
            let usual = (level * self.factor[i]).max(1e-9);
            let spill = self.config.announced_spill * self.known[i];
            let mean = usual + spill;
            let level_error = (1.0 / usual + self.phi) / count as f64;
            let phi = (self.phi + level_error) * (usual / mean).powi(2) + (spill / mean).powi(2);
            (NegativeBinomial { mean, phi }, count)
        })
    }

    /// Fits the dispersion and leaves out what it makes improbable, `passes` times.
    fn screen(&mut self, passes: usize) {
        for _ in 0..passes {
            let levels: Vec<Option<(f64, usize)>> =
                (0..self.fit.len()).map(|i| self.level(i)).collect();
            // Method of moments: E[(x - μ)²] = μ + φμ².
            let (mut excess, mut scale) = (0.0, 0.0);
            for (i, level) in levels.iter().enumerate() {
                if let (Some(f), Some((level, _))) = (self.usable(i), level) {
                    let mean = level * self.factor[i];
                    excess += (f - mean).powi(2) - mean;
                    scale += mean * mean;
                }
            }
            self.phi = if scale > 0.0 {
                (excess / scale).clamp(0.0, 50.0)
            } else {
                0.0
            };
            for (i, level) in levels.iter().enumerate() {
                self.outlier[i] = match (self.fit[i], level) {
                    (Some(f), Some((level, _))) => {
                        NegativeBinomial {
                            mean: level * self.factor[i],
                            phi: self.phi,
                        }
                        .ln_upper_tail(f)
                            < LN_OUTLIER
                    }
                    _ => false,
                };
            }
        }
    }

    /// Level shifts: at each usable outflow, the mean log size of the next
    /// `shift_window` usable outflows against that of up to twice as many
    /// before it in its segment, in standard errors of the item's log
    /// spread. A change beyond `shift_min_ratio` either way whose
    /// probability, times the windows of that length a year, is below
    /// `max_false_alerts_per_year` is a shift, placed where the change is
    /// sharpest within a window; the history is cut there.
    fn shifts(&mut self, item: AggregateId, movements: &[Movement]) -> Vec<Anomaly> {
        let config = self.config;
        let usable: Vec<usize> = (0..self.fit.len())
            .filter(|&j| self.usable(j).is_some())
            .collect();
        // Sparse items (few movements over the history) compare shorter
        // windows: a quarter of their movements, 14 at least.
        let s = config
            .shift_window
            .min(usable.len() / 4)
            .max(MIN_SHIFT_WINDOW)
            .max(2);
        if usable.len() < 2 * s {
            return Vec::new();
        }
        // Windows that do not overlap, a year.
        let windows = usable.len() as f64 / s as f64 / self.years;
        let spread = self.log_spread(&usable);
        let ln_max = config.max_false_alerts_per_year.ln();
        let mut found = Vec::new();
        let mut start = 0; // position in `usable` where the segment starts
        let mut p = s;
        while p + s <= usable.len() {
            let Some(first) = self.window_test(&usable, s, spread, start, p) else {
                p += 1;
                continue;
            };
            if !first.is_shift(config, windows, ln_max) {
                p += 1;
                continue;
            }
            // The sharpest point within a window from here, same direction.
            let mut best = (p, first);
            for q in p + 1..(p + s).min(usable.len() - s + 1) {
                if let Some(t) = self.window_test(&usable, s, spread, start, q) {
                    if t.z.signum() == first.z.signum() && t.z.abs() > best.1.z.abs() {
                        best = (q, t);
                    }
                }
            }
            // The sharpest point is reported only if it passes itself.
            let (q, t) = if best.1.is_shift(config, windows, ln_max) {
                best
            } else {
                (p, first)
            };
            let at = movements[usable[q]].at;
            let ln_p = t.ln_probability();
            found.push(Anomaly::with_ln_probability(
                item,
                AnomalyKind::LevelShift,
                at,
                ln_p,
                windows,
                t.after,
                t.before,
                format!(
                    "the usual outflow went {} from {:.1} to {:.1} units ({:+.0}%) from {} on: \
                     the {s} outflows since against the {} before{}; probability {:.1e}",
                    if t.z > 0.0 { "up" } else { "down" },
                    t.before,
                    t.after,
                    100.0 * (t.after - t.before) / t.before.max(1e-9),
                    at.date_naive(),
                    t.before_count,
                    if self.by_weekday {
                        ", weekday-adjusted"
                    } else {
                        ""
                    },
                    ln_p.exp(),
                ),
            ));
            let cut = usable[q];
            let k = self.cuts.partition_point(|&c| c <= cut);
            self.cuts.insert(k, cut);
            start = q;
            p = q + s;
        }
        found
    }

    /// The window comparison at position `p` of `usable`, or None where the
    /// windows are not full.
    fn window_test(
        &self,
        usable: &[usize],
        s: usize,
        spread: f64,
        start: usize,
        p: usize,
    ) -> Option<WindowTest> {
        if p < start + s || p + s > usable.len() {
            return None;
        }
        let before = &usable[p.saturating_sub(2 * s).max(start)..p];
        let after = &usable[p..p + s];
        let sums = |window: &[usize]| {
            window.iter().fold((0.0, 0.0), |(units, weight), &j| {
                (units + self.fit[j].unwrap_or(0.0), weight + self.factor[j])
            })
        };
        let ((units_b, weight_b), (units_a, weight_a)) = (sums(before), sums(after));
        if weight_b <= 0.0 || weight_a <= 0.0 {
            return None;
        }
        let (r_b, r_a) = (units_b / weight_b, units_a / weight_a);
        // On the log scale, where the gamma-mixed noise of counts is about
        // even: the means of both windows, in units of the item's spread.
        let mean_log = |window: &[usize]| {
            window.iter().map(|&j| self.log_size(j)).sum::<f64>() / window.len() as f64
        };
        let difference = mean_log(after) - mean_log(before);
        let error = spread * (1.0 / after.len() as f64 + 1.0 / before.len() as f64).sqrt();
        Some(WindowTest {
            z: difference / error,
            before: r_b,
            after: r_a,
            before_count: before.len(),
        })
    }

    /// A fitted size on the log scale, weekday-adjusted.
    fn log_size(&self, j: usize) -> f64 {
        (self.fit[j].unwrap_or(0.0) + 0.5).ln() - self.factor[j].ln()
    }

    /// The spread of log sizes from one usable outflow to the next,
    /// 1.4826 × MAD / √2 (neither a shift nor a slow season moves it), at
    /// least 0.1.
    fn log_spread(&self, usable: &[usize]) -> f64 {
        let steps: Vec<f64> = usable
            .windows(2)
            .map(|pair| (self.log_size(pair[1]) - self.log_size(pair[0])).abs())
            .collect();
        (1.4826 * median(&steps) / std::f64::consts::SQRT_2).max(0.1)
    }

    /// Outflows that the model of their segment makes improbable.
    fn spikes(&self, item: AggregateId, movements: &[Movement]) -> Vec<Anomaly> {
        let tests = movements.len() as f64 / self.years;
        let ln_max = self.config.max_false_alerts_per_year.ln() - tests.ln();
        let mut found = Vec::new();
        for (i, movement) in movements.iter().enumerate() {
            let Some((model, neighbours)) = self.expected(i) else {
                continue;
            };
            let size = self.judged[i];
            if size < model.mean + 1.0 {
                continue;
            }
            let ln_p = model.ln_upper_tail(size);
            if ln_p.is_nan() || ln_p >= ln_max {
                continue;
            }
            let reserved = if movement.known > 0.0 {
                format!(" ({} of {} were reserved)", movement.known, movement.units)
            } else {
                String::new()
            };
            found.push(Anomaly::with_ln_probability(
                item,
                AnomalyKind::UnusualOutflow,
                movement.at,
                ln_p,
                tests,
                size,
                model.mean,
                format!(
                    "{size} units left unannounced{reserved} on {}, where {:.1} are usual{} \
                     (from the {neighbours} outflows around it; dispersion {:.2}): probability {:.1e}",
                    movement.at.format("%Y-%m-%d %H:%M UTC"),
                    model.mean,
                    if self.by_weekday {
                        format!(" on a {}", movement.at.weekday())
                    } else {
                        String::new()
                    },
                    self.phi,
                    ln_p.exp(),
                ),
            ));
        }
        found
    }
}

/// One comparison of the levels before and after a point.
#[derive(Clone, Copy)]
struct WindowTest {
    /// The change in standard errors (positive: up).
    z: f64,
    before: f64,
    after: f64,
    before_count: usize,
}

impl WindowTest {
    fn is_shift(&self, config: &DetectorConfig, windows: f64, ln_max: f64) -> bool {
        let ratio = self.after / self.before.max(1e-9);
        let big = ratio >= config.shift_min_ratio || ratio <= 1.0 / config.shift_min_ratio;
        big && self.ln_probability() + windows.ln() < ln_max
    }

    /// Two-sided: a change this large either way.
    fn ln_probability(&self) -> f64 {
        (ln_normal_upper_tail(self.z.abs()) + std::f64::consts::LN_2).min(0.0)
    }
}

fn weekday(at: DateTime<Utc>) -> usize {
    at.weekday().num_days_from_monday() as usize
}

/// Per weekday, the mean fitted size over the mean of all, shrunk towards 1
/// by two outflows' worth of the overall mean (a weekday with little data
/// stays near 1), at least 0.05; when the fitted outflows span three weeks.
fn weekday_factors(movements: &[Movement], fit: &[Option<f64>]) -> Option<[f64; 7]> {
    let fitted: Vec<(DateTime<Utc>, f64)> = movements
        .iter()
        .zip(fit)
        .filter_map(|(m, f)| f.map(|f| (m.at, f)))
        .collect();
    let first = fitted.iter().map(|(at, _)| *at).min()?;
    let last = fitted.iter().map(|(at, _)| *at).max()?;
    if last - first < chrono::Duration::days(21) {
        return None;
    }
    // Medians would be robust but are coarse on small counts; the largest
    // tenth is trimmed instead.
    let mut sorted: Vec<f64> = fitted.iter().map(|(_, f)| *f).collect();
    sorted.sort_by(f64::total_cmp);
    let cap = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
    let mean = sorted.iter().map(|f| f.min(cap)).sum::<f64>() / sorted.len() as f64;
    if mean <= 0.0 {
        return None;
    }
    let (mut sums, mut counts) = ([0.0; 7], [0.0; 7]);
    for (at, f) in &fitted {
        sums[weekday(*at)] += f.min(cap);
        counts[weekday(*at)] += 1.0;
    }
    let mut factors = [1.0; 7];
    for day in 0..7 {
        factors[day] = ((sums[day] + 2.0 * mean) / ((counts[day] + 2.0) * mean)).max(0.05);
    }
    Some(factors)
}
