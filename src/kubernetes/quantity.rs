//! Kubernetes resource quantities (`500m`, `2`, `1Gi`, `512M`, `1e9`), as the API serializes
//! them (k8s.io/apimachinery `resource.Quantity`: a number with a decimal SI or binary suffix,
//! or an exponent). Kept apart from the emulator's parser on purpose: a client and the server
//! it is tested against must not share a mistake.

/// CPU in millicores, rounded up as the scheduler counts it.
pub fn cpu_millis(q: &str) -> Option<u64> {
    scaled(q, 1000.0)
}

/// Memory in bytes.
pub fn memory_bytes(q: &str) -> Option<u64> {
    scaled(q, 1.0)
}

fn scaled(q: &str, unit: f64) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    let value = number * factor * unit;
    (value >= 0.0).then(|| value.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_the_api_writes() {
        assert_eq!(cpu_millis("500m"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(memory_bytes("1Gi"), Some(1 << 30));
        assert_eq!(memory_bytes("512M"), Some(512_000_000));
        assert_eq!(memory_bytes("1e3"), Some(1000));
        assert_eq!(memory_bytes("12Qi"), None);
    }
}
