//! Trino's statistical functions DataFusion lacks: the aggregates
//! `skewness`, `kurtosis` and `geometric_mean` (functions/aggregate.md),
//! and `normal_cdf`, `inverse_normal_cdf`, `wilson_interval_lower` /
//! `_upper` (functions/math.md).
//!
//! The moments are kept as count, mean and the central sums M2, M3, M4,
//! combined with Pébay's pairwise formulas, so partial aggregates merge
//! without the cancellation a sum of powers suffers.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, ScalarUDF, Signature, Volatility};

use super::udf::{any, ret_f64, udf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Skewness,
    Kurtosis,
    GeometricMean,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Moments {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

pub(crate) fn aggregates() -> Vec<AggregateUDF> {
    [("skewness", Kind::Skewness), ("kurtosis", Kind::Kurtosis), ("geometric_mean", Kind::GeometricMean)]
        .into_iter()
        .map(|(name, kind)| {
            AggregateUDF::new_from_impl(Moments {
                name,
                kind,
                signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Immutable),
            })
        })
        .collect()
}

const STATE: [&str; 6] = ["n", "sum", "mean", "m2", "m3", "m4"];

impl AggregateUDFImpl for Moments {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE.iter().map(|s| Arc::new(Field::new(format!("{}_{s}", args.name), DataType::Float64, true))).collect())
    }

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Central { kind: self.kind, m: State::default() }))
    }
}

/// Count, mean and central sums of powers 2 to 4 (for `geometric_mean`,
/// of the logarithms, whose mean is all it needs).
#[derive(Debug, Default, Clone, Copy)]
struct State {
    n: f64,
    /// The plain sum: `geometric_mean` is `exp(sum / n)` as in Trino, which
    /// rounds as Trino's does where the running mean would not.
    sum: f64,
    mean: f64,
    m2: f64,
    m3: f64,
    m4: f64,
}

impl State {
    fn merge(&mut self, b: State) {
        if b.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = b;
            return;
        }
        let a = *self;
        let n = a.n + b.n;
        self.sum = a.sum + b.sum;
        let d = b.mean - a.mean;
        let (d2, d3, d4) = (d * d, d * d * d, d * d * d * d);
        self.n = n;
        self.mean = a.mean + d * b.n / n;
        self.m2 = a.m2 + b.m2 + d2 * a.n * b.n / n;
        self.m3 = a.m3 + b.m3 + d3 * a.n * b.n * (a.n - b.n) / (n * n) + 3.0 * d * (a.n * b.m2 - b.n * a.m2) / n;
        self.m4 = a.m4
            + b.m4
            + d4 * a.n * b.n * (a.n * a.n - a.n * b.n + b.n * b.n) / (n * n * n)
            + 6.0 * d2 * (a.n * a.n * b.m2 + b.n * b.n * a.m2) / (n * n)
            + 4.0 * d * (a.n * b.m3 - b.n * a.m3) / n;
    }

    fn add(&mut self, x: f64) {
        self.merge(State { n: 1.0, sum: x, mean: x, ..Default::default() });
    }
}

#[derive(Debug)]
struct Central {
    kind: Kind,
    m: State,
}

fn doubles(a: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(a, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
}

impl Accumulator for Central {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for x in doubles(&values[0])?.iter().flatten() {
            self.m.add(if self.kind == Kind::GeometricMean { x.ln() } else { x });
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let cols: Vec<Float64Array> = states.iter().map(doubles).collect::<Result<_>>()?;
        for row in 0..cols[0].len() {
            let v = |c: usize| if cols[c].is_valid(row) { cols[c].value(row) } else { 0.0 };
            self.m.merge(State { n: v(0), sum: v(1), mean: v(2), m2: v(3), m3: v(4), m4: v(5) });
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let m = self.m;
        Ok([m.n, m.sum, m.mean, m.m2, m.m3, m.m4].into_iter().map(|v| ScalarValue::Float64(Some(v))).collect())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let State { n, sum, m2, m3, m4, .. } = self.m;
        let out = match self.kind {
            Kind::GeometricMean => (n > 0.0).then(|| (sum / n).exp()),
            Kind::Skewness => (n >= 3.0).then(|| n.sqrt() * m3 / m2.powf(1.5)),
            Kind::Kurtosis => {
                (n >= 4.0).then(|| ((n * (n + 1.0) * m4 / (m2 * m2)) - 3.0 * (n - 1.0)) * (n - 1.0) / ((n - 2.0) * (n - 3.0)))
            }
        };
        Ok(ScalarValue::Float64(out))
    }

    fn size(&self) -> usize {
        size_of::<Self>()
    }
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("normal_cdf", &[], any(3), ret_f64, normal_cdf),
        udf("inverse_normal_cdf", &[], any(3), ret_f64, inverse_normal_cdf),
        udf("wilson_interval_lower", &[], any(3), ret_f64, |a, _| wilson(a, -1.0)),
        udf("wilson_interval_upper", &[], any(3), ret_f64, |a, _| wilson(a, 1.0)),
    ]
}

/// `f` over three double arguments, NULL where any is.
fn ternary(args: &[ArrayRef], f: impl Fn(f64, f64, f64) -> Result<f64>) -> Result<ArrayRef> {
    let (a, b, c) = (doubles(&args[0])?, doubles(&args[1])?, doubles(&args[2])?);
    let out: Float64Array = (0..a.len())
        .map(|i| match (a.is_valid(i), b.is_valid(i), c.is_valid(i)) {
            (true, true, true) => f(a.value(i), b.value(i), c.value(i)).map(Some),
            _ => Ok(None),
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(out))
}

fn normal_cdf(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    ternary(args, |mean, sd, v| {
        if sd <= 0.0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: normal_cdf Function: standardDeviation must be > 0");
        }
        Ok(0.5 * (1.0 + libm::erf((v - mean) / (sd * std::f64::consts::SQRT_2))))
    })
}

fn inverse_normal_cdf(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    ternary(args, |mean, sd, p| {
        if !(p > 0.0 && p < 1.0) {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: inverse_normal_cdf Function: p must be 0 > p > 1");
        }
        if sd <= 0.0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: inverse_normal_cdf Function: sd must be > 0");
        }
        Ok(mean + sd * standard_normal_quantile(p))
    })
}

/// The standard normal quantile: Acklam's rational approximation, then one
/// Halley step on the exact CDF (through `erfc`), which brings it to about
/// machine precision.
fn standard_normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] =
        [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.383_577_518_672_69e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] =
        [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let low = 0.02425;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The Wilson score interval's bound on the side of `sign`.
fn wilson(args: &[ArrayRef], sign: f64) -> Result<ArrayRef> {
    ternary(args, |successes, trials, z| {
        if successes < 0.0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: number of successes must not be negative");
        }
        if trials <= 0.0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: number of trials must be positive");
        }
        if successes > trials {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: number of successes must not be larger than number of trials");
        }
        if z < 0.0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: z-score must not be negative");
        }
        let p = successes / trials;
        let z2 = z * z;
        let center = p + z2 / (2.0 * trials);
        let spread = ((p * (1.0 - p) + z2 / (4.0 * trials)) / trials).sqrt();
        Ok((center + sign * z * spread) / (1.0 + z2 / trials))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_moments_equal_one_pass() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, 1.5, 30.0];
        let mut whole = State::default();
        xs.iter().for_each(|&x| whole.add(x));
        let (mut a, mut b) = (State::default(), State::default());
        xs[..3].iter().for_each(|&x| a.add(x));
        xs[3..].iter().for_each(|&x| b.add(x));
        a.merge(b);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let central = |k: i32| xs.iter().map(|x| (x - mean).powi(k)).sum::<f64>();
        for (got, want) in [(a.m2, central(2)), (a.m3, central(3)), (a.m4, central(4)), (whole.m4, central(4))] {
            assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{got} != {want}");
        }
    }

    #[test]
    fn quantile_inverts_the_cdf() {
        for p in [1e-10, 0.001, 0.025, 0.3, 0.5, 0.9, 0.975, 0.999999] {
            let x = standard_normal_quantile(p);
            let back = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
            assert!((back - p).abs() < 1e-14 * p.max(1e-3), "{p}: {back}");
        }
        assert!((standard_normal_quantile(0.975) - 1.959963984540054).abs() < 1e-12);
    }
}
