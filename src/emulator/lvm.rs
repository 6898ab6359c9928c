//! Reads LVM2 physical volumes in an image, as the boot's `lvm vgchange -ay` would find them,
//! without device-mapper: the PV label, the volume group's text metadata, and where each
//! linear logical volume's extents are on this disk. The formats are LVM2's own on-disk ones
//! (lib/format_text/layout.h: `label_header`, `pv_header`, `mda_header`, `raw_locn`; the text
//! metadata written by lib/format_text/export.c).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const SECTOR: u64 = 512;
/// `FMTT_MAGIC` of an `mda_header`.
const MDA_MAGIC: &[u8; 16] = b"\x20\x4c\x56\x4d\x32\x20\x78\x5b\x35\x41\x25\x72\x30\x4e\x2a\x3e";

/// A logical volume found on the PV: its bytes are `extents` (offset, length) of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lv {
    pub vg: String,
    pub name: String,
    pub extents: Vec<(u64, u64)>,
    /// Some of its segments are on another PV, or not linear: it cannot be read from here.
    pub incomplete: bool,
}

impl Lv {
    /// `/dev/mapper/VG-LV`, dashes in either name doubled (libdevmapper's `dm_build_dm_name`).
    pub fn mapper_name(&self) -> String {
        format!(
            "{}-{}",
            self.vg.replace('-', "--"),
            self.name.replace('-', "--")
        )
    }
}

/// The logical volumes of the PV at `offset` (a partition, or 0 for a whole disk); empty when
/// it is no PV.
pub fn volumes(image: &Path, offset: u64) -> anyhow::Result<Vec<Lv>> {
    let f = File::open(image)?;
    let mut label = None;
    for sector in 0..4u64 {
        let mut s = [0u8; 512];
        if f.read_exact_at(&mut s, offset + sector * SECTOR).is_err() {
            break;
        }
        if &s[0..8] == b"LABELONE" && &s[24..32] == b"LVM2 001" {
            label = Some((sector, s));
            break;
        }
    }
    let Some((sector, s)) = label else {
        return Ok(Vec::new());
    };
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let header = u32_at(&s, 20) as usize;
    let pv = &s[header..];
    let uuid = String::from_utf8_lossy(&pv[0..32]).to_string();
    // pv_header: uuid, device size, then the data areas and the metadata areas, each list ended
    // by a zero entry.
    let mut at = 40;
    let mut lists = [Vec::new(), Vec::new()];
    for list in &mut lists {
        while at + 16 <= pv.len() {
            let (o, l) = (u64_at(pv, at), u64_at(pv, at + 8));
            at += 16;
            if o == 0 && l == 0 {
                break;
            }
            list.push((o, l));
        }
    }
    let _ = sector;
    let Some(&(mda, mda_size)) = lists[1].first() else {
        return Ok(Vec::new());
    };
    let mut mh = [0u8; 512];
    f.read_exact_at(&mut mh, offset + mda)?;
    anyhow::ensure!(
        &mh[4..20] == MDA_MAGIC,
        "LVM metadata area without its magic"
    );
    let (text_off, text_len) = (u64_at(&mh, 40), u64_at(&mh, 48));
    let mut text = vec![0u8; text_len as usize];
    // The metadata area is a ring after its 512-byte header: the text may wrap to its start.
    let first = text_len.min(mda_size.saturating_sub(text_off));
    f.read_exact_at(&mut text[..first as usize], offset + mda + text_off)?;
    if first < text_len {
        f.read_exact_at(&mut text[first as usize..], offset + mda + SECTOR)?;
    }
    let text = String::from_utf8_lossy(&text)
        .trim_end_matches('\0')
        .to_string();
    let tree = parse(&text);
    let Some((vg, Node::Section(vg_tree))) = tree
        .iter()
        .find(|(_, n)| matches!(n, Node::Section(s) if s.contains_key("physical_volumes")))
    else {
        return Ok(Vec::new());
    };
    let extent = num(vg_tree.get("extent_size")) * SECTOR;
    let pvs = section(vg_tree.get("physical_volumes"));
    let ours: BTreeMap<&str, u64> = pvs
        .iter()
        .filter_map(|(k, n)| {
            let s = section(Some(n));
            let id = text_of(s.get("id")).replace('-', "");
            (id == uuid).then(|| (k.as_str(), num(s.get("pe_start")) * SECTOR))
        })
        .collect();
    let mut out = Vec::new();
    for (name, lv) in section(vg_tree.get("logical_volumes")) {
        let lv = section(Some(&lv));
        let mut extents = Vec::new();
        let mut incomplete = false;
        for seg in lv.values().filter_map(|n| match n {
            Node::Section(s) if s.contains_key("extent_count") => Some(s),
            _ => None,
        }) {
            let count = num(seg.get("extent_count"));
            let stripes = match seg.get("stripes") {
                Some(Node::List(l)) => l.clone(),
                _ => Vec::new(),
            };
            let linear = text_of(seg.get("type")) == "striped" && stripes.len() == 2;
            match (linear, stripes.first().and_then(|p| ours.get(p.as_str()))) {
                (true, Some(pe_start)) => {
                    let first: u64 = stripes[1].parse().unwrap_or(0);
                    extents.push((offset + pe_start + first * extent, count * extent));
                }
                _ => incomplete = true,
            }
        }
        out.push(Lv {
            vg: vg.clone(),
            name: name.clone(),
            extents,
            incomplete,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Node {
    Value(String),
    List(Vec<String>),
    Section(BTreeMap<String, Node>),
}

fn section(n: Option<&Node>) -> BTreeMap<String, Node> {
    match n {
        Some(Node::Section(s)) => s.clone(),
        _ => BTreeMap::new(),
    }
}

fn text_of(n: Option<&Node>) -> String {
    match n {
        Some(Node::Value(v)) => v.clone(),
        _ => String::new(),
    }
}

fn num(n: Option<&Node>) -> u64 {
    text_of(n).parse().unwrap_or(0)
}

/// LVM2's text format: `name {`, `}`, `key = value` with values numbers, "strings" or
/// [lists]; `#` starts a comment.
fn parse(text: &str) -> BTreeMap<String, Node> {
    let mut stack: Vec<(String, BTreeMap<String, Node>)> = vec![(String::new(), BTreeMap::new())];
    let mut pending = String::new();
    for raw in text.lines() {
        let part = strip_comment(raw).trim();
        // A list may span lines (`stripes = [` ... `]`).
        if !pending.is_empty() || (part.contains("= [") && !part.contains(']')) {
            pending.push_str(part);
            pending.push(' ');
            if !part.contains(']') {
                continue;
            }
        }
        let joined = std::mem::take(&mut pending);
        let line = if joined.is_empty() {
            part
        } else {
            joined.trim()
        };
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_suffix('{') {
            stack.push((name.trim().to_string(), BTreeMap::new()));
        } else if line == "}" {
            if stack.len() > 1 {
                let (name, body) = stack.pop().expect("more than one");
                stack
                    .last_mut()
                    .expect("root")
                    .1
                    .insert(name, Node::Section(body));
            }
        } else if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let node = match v.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                Some(items) => Node::List(
                    items
                        .split(',')
                        .map(|i| i.trim().trim_matches('"').to_string())
                        .filter(|i| !i.is_empty())
                        .collect(),
                ),
                None => Node::Value(v.trim_matches('"').to_string()),
            };
            stack
                .last_mut()
                .expect("root")
                .1
                .insert(k.trim().to_string(), node);
        }
    }
    stack.swap_remove(0).1
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_metadata_parses() {
        let t = parse("rootvg {\nid = \"x\"\nextent_size = 8192 # 4 MiB\nlogical_volumes {\nrootlv {\nsegment1 {\nstart_extent = 0\nextent_count = 8\ntype = \"striped\"\nstripes = [\n\"pv0\", 0\n]\n}\n}\n}\n}\n");
        let vg = section(t.get("rootvg"));
        assert_eq!(num(vg.get("extent_size")), 8192);
        let lvs = section(vg.get("logical_volumes"));
        assert!(lvs.contains_key("rootlv"));
    }

    #[test]
    fn mapper_names_double_dashes() {
        let lv = Lv {
            vg: "my-vg".into(),
            name: "root".into(),
            extents: vec![],
            incomplete: false,
        };
        assert_eq!(lv.mapper_name(), "my--vg-root");
    }
}
