//! The probabilities the detector reports: negative-binomial tails for
//! movement sizes in whole units, and normal tails for log-scale and
//! window comparisons. Everything is in natural logarithms, so that a
//! probability of 1e-300 is as exact as one of 0.01.

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, nine terms: about 15 digits).
pub(super) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// A count distribution: negative binomial with this mean and dispersion
/// `phi` (variance `mean + phi * mean²`; 0 is Poisson).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct NegativeBinomial {
    pub(super) mean: f64,
    pub(super) phi: f64,
}

impl NegativeBinomial {
    /// `ln P(X = j)`.
    fn ln_pmf(&self, j: f64) -> f64 {
        let mean = self.mean.max(1e-9);
        if self.phi < 1e-9 {
            return -mean + j * mean.ln() - ln_gamma(j + 1.0);
        }
        let k = 1.0 / self.phi;
        ln_gamma(j + k) - ln_gamma(k) - ln_gamma(j + 1.0)
            + k * (k / (k + mean)).ln()
            + j * (mean / (k + mean)).ln()
    }

    /// `ln P(X ≥ x)` (`x` rounded up to a whole unit): 0 (certainty) for
    /// `x` at or below the mean, where nothing is unusually high. Above it,
    /// the terms from `x` on decrease (the mode is below the mean), so they
    /// are summed until they no longer matter and the rest is bounded by a
    /// geometric series: the result errs, if at all, towards the more
    /// probable.
    pub(super) fn ln_upper_tail(&self, x: f64) -> f64 {
        if x.is_infinite() && x > 0.0 {
            return -f64::MAX;
        }
        if x.is_nan() || x <= self.mean || !x.is_finite() {
            return 0.0;
        }
        let x = x.ceil();
        let mean = self.mean.max(1e-9);
        let k = if self.phi < 1e-9 {
            f64::INFINITY
        } else {
            1.0 / self.phi
        };
        let ratio = |j: f64| {
            if k.is_infinite() {
                mean / (j + 1.0)
            } else {
                (j + k) / (j + 1.0) * (mean / (k + mean))
            }
        };
        let first = self.ln_pmf(x);
        // Past the mean the ratio of one term to the one before decreases
        // towards mean / (k + mean) when k ≥ 1 and increases towards it
        // when k < 1: the larger of the current ratio and that limit bounds
        // every later ratio, and so the rest of the sum.
        let limit = if k.is_infinite() {
            0.0
        } else {
            mean / (k + mean)
        };
        let rest = |term: f64, j: f64| {
            let r = ratio(j)
                .max(if k < 1.0 { limit } else { 0.0 })
                .min(1.0 - 1e-9);
            term * r / (1.0 - r)
        };
        // The sum relative to the first term.
        let (mut sum, mut term, mut j) = (1.0_f64, 1.0_f64, x);
        for _ in 0..4000 {
            term *= ratio(j);
            sum += term;
            j += 1.0;
            if term < 1e-12 * sum {
                break;
            }
        }
        (first + (sum + rest(term, j)).ln()).min(0.0)
    }
}

/// `ln P(Z ≥ z)` for a standard normal `Z`.
pub(super) fn ln_normal_upper_tail(z: f64) -> f64 {
    if z < 5.0 {
        (0.5 * erfc(z / std::f64::consts::SQRT_2))
            .max(f64::MIN_POSITIVE)
            .ln()
    } else {
        // Mills' ratio, three terms: relative error below 1e-3 from 5 on.
        let z2 = z * z;
        -0.5 * z2 - (z * (2.0 * std::f64::consts::PI).sqrt()).ln()
            + (1.0 - 1.0 / z2 + 3.0 / (z2 * z2)).ln()
    }
}

/// The complementary error function (Numerical Recipes' `erfcc`: relative
/// error below 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_is_log_factorial_on_integers() {
        let mut factorial = 1.0_f64;
        for n in 1..30 {
            factorial *= n as f64;
            assert!(
                close(ln_gamma(n as f64 + 1.0), factorial.ln(), 1e-12),
                "{n}"
            );
        }
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
    }

    /// The tails against sums of the probabilities themselves.
    #[test]
    fn tails_equal_summed_probabilities() {
        for (mean, phi) in [
            (3.0, 0.0),
            (10.0, 0.0),
            (10.0, 0.5),
            (2.0, 4.0),
            (150.0, 0.1),
        ] {
            let nb = NegativeBinomial { mean, phi };
            for x in [mean.ceil() + 1.0, 2.0 * mean + 3.0, 5.0 * mean + 10.0] {
                let direct: f64 = (x as i64..x as i64 + 20_000)
                    .map(|j| nb.ln_pmf(j as f64).exp())
                    .sum();
                let tail = nb.ln_upper_tail(x).exp();
                assert!(
                    close(tail, direct, 1e-6),
                    "mean {mean} phi {phi} x {x}: {tail} against {direct}"
                );
            }
        }
        // Poisson(3): P(X >= 9) = 0.003803...
        let p = NegativeBinomial {
            mean: 3.0,
            phi: 0.0,
        }
        .ln_upper_tail(9.0)
        .exp();
        assert!(close(p, 0.003_803_3, 1e-4), "{p}");
        // At or below the mean nothing is unusual; absurd inputs stay finite.
        let nb = NegativeBinomial {
            mean: 10.0,
            phi: 0.2,
        };
        assert_eq!(nb.ln_upper_tail(10.0), 0.0);
        assert_eq!(nb.ln_upper_tail(-5.0), 0.0);
        assert!(nb.ln_upper_tail(9.2e18).is_finite());
        assert!(nb.ln_upper_tail(f64::INFINITY) < -1e300);
    }

    #[test]
    fn normal_tails() {
        assert!(close(ln_normal_upper_tail(0.0).exp(), 0.5, 1e-6));
        assert!(close(ln_normal_upper_tail(3.0).exp(), 1.349_898e-3, 1e-5));
        assert!(close(ln_normal_upper_tail(6.0).exp(), 9.865_876e-10, 1e-3));
        assert!(close(ln_normal_upper_tail(-2.0).exp(), 0.977_25, 1e-5));
        assert!(ln_normal_upper_tail(40.0).is_finite());
    }
}
