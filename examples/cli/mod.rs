//! What the examples' command lines share: clap value parsers that turn a value out of range
//! into clap's one-line error and exit status 2, before any work starts.

// Each example uses the parsers its flags need.
#![allow(dead_code)]

use shapesafe::device::DeviceKind;

fn number(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{s:?} is not a finite number"))
}

/// A number above 0: a learning rate, a clipping norm, a temperature.
pub fn positive(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be above 0, got {v}"))
    }
}

/// A factor in (0, 1]: a learning-rate decay per epoch.
pub fn decay(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("must be in (0, 1], got {v}"))
    }
}

/// A number in [0, 1): a dropout rate, a fraction held out.
pub fn fraction(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be in [0, 1), got {v}"))
    }
}

/// A number of at least 0: a weight-decay strength.
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be at least 0, got {v}"))
    }
}

/// A whole number of at least 1: epochs, a batch size, a count.
pub fn count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1, got 0".to_string()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// `cpu`, `cuda`, `cuda:N`, or `auto`: the GPU when this build has CUDA and one answers,
/// else the CPU (probing takes a moment, so only when asked).
pub fn device(s: &str) -> Result<DeviceKind, String> {
    if s == "auto" {
        return Ok(DeviceKind::best_available());
    }
    s.parse::<DeviceKind>().map_err(|e| e.to_string())
}

/// A prompt as typed, with `\\n` standing for a new line.
pub fn prompt(s: &str) -> Result<String, String> {
    Ok(s.replace("\\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_are_refused() {
        for bad in ["0", "-1", "NaN", "inf", "x"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert_eq!(positive("2e-3"), Ok(2e-3));
        for bad in ["0", "1.5", "-0.5"] {
            assert!(decay(bad).is_err(), "{bad}");
        }
        assert_eq!(decay("1"), Ok(1.0));
        assert!(fraction("1").is_err() && fraction("-0.1").is_err());
        assert_eq!(fraction("0"), Ok(0.0));
        assert!(non_negative("-1").is_err());
        assert!(count("0").is_err() && count("-3").is_err() && count("2.5").is_err());
        assert_eq!(count("64"), Ok(64));
        assert!(device("gpu").is_err());
        assert_eq!(prompt("Ham.\\n"), Ok("Ham.\n".to_string()));
    }
}
