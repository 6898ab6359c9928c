//! Kubernetes resource quantities (`resource.Quantity`): the decimal SI and binary suffixes of
//! k8s.io/apimachinery/pkg/api/resource, enough for CPU and memory requests.

use anyhow::{bail, Context};

/// `2` → 2000, `1500m` → 1500, `0.5` → 500.
pub fn cpu_millis(q: &str) -> anyhow::Result<u64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m
            .parse::<u64>()
            .with_context(|| format!("`{q}` is not a CPU quantity (e.g. 2, 1500m)"));
    }
    let cores: f64 = q
        .parse()
        .with_context(|| format!("`{q}` is not a CPU quantity (e.g. 2, 1500m)"))?;
    if !(cores >= 0.0 && cores.is_finite()) {
        bail!("`{q}` is not a CPU quantity (e.g. 2, 1500m)");
    }
    Ok((cores * 1000.0).round() as u64)
}

/// `8Gi`, `512Mi`, `1G`, `1000` → bytes.
pub fn bytes(q: &str) -> anyhow::Result<u64> {
    let q = q.trim();
    const SUFFIXES: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (num, mult) = SUFFIXES
        .iter()
        .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
        .unwrap_or((q, 1));
    let n: f64 = num
        .parse()
        .with_context(|| format!("`{q}` is not a memory quantity (e.g. 8Gi, 512Mi)"))?;
    if !(n >= 0.0 && n.is_finite()) {
        bail!("`{q}` is not a memory quantity (e.g. 8Gi, 512Mi)");
    }
    Ok((n * mult as f64).round() as u64)
}

/// What the API server would store: the quantity as given, or `0` for an absent one.
pub fn pod_requests(pod: &serde_json::Value) -> (u64, u64) {
    let mut cpu = 0;
    let mut mem = 0;
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let r = &c["resources"]["requests"];
        cpu += r["cpu"]
            .as_str()
            .and_then(|q| cpu_millis(q).ok())
            .unwrap_or(0);
        mem += r["memory"]
            .as_str()
            .and_then(|q| bytes(q).ok())
            .unwrap_or(0);
    }
    (cpu, mem)
}

/// kubectl describe's figure for millicores (`1500m`) as the API returns it.
pub fn format_millis(m: u64) -> String {
    if m.is_multiple_of(1000) {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantities_parse_as_kubernetes_does() {
        assert_eq!(super::cpu_millis("2").unwrap(), 2000);
        assert_eq!(super::cpu_millis("1500m").unwrap(), 1500);
        assert_eq!(super::cpu_millis("0.25").unwrap(), 250);
        assert_eq!(super::bytes("8Gi").unwrap(), 8 << 30);
        assert_eq!(super::bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(super::bytes("100").unwrap(), 100);
        assert!(super::bytes("lots").is_err());
        assert!(super::cpu_millis("-1").is_err());
    }
}
