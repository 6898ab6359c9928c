//! Managed disks and snapshots: both are an image file in the data dir plus ARM metadata.

use std::sync::Arc;

use serde_json::{json, Value};

use super::super::arm::{self, ArmError, ArmResult};
use super::super::http::{Call, Reply};
use super::super::images;
use super::super::latency::*;
use super::super::operations::{Family, OpKind};
use super::super::rules;
use super::super::server::Emu;
use super::super::state::{Creation, DiskSettings, State, Volume};
use super::{field, group, tags};

fn kind(snapshot: bool) -> &'static str {
    if snapshot {
        "snapshots"
    } else {
        "disks"
    }
}

fn map(state: &State, snapshot: bool) -> &std::collections::BTreeMap<String, Volume> {
    if snapshot {
        &state.snapshots
    } else {
        &state.disks
    }
}

fn map_mut(state: &mut State, snapshot: bool) -> &mut std::collections::BTreeMap<String, Volume> {
    if snapshot {
        &mut state.snapshots
    } else {
        &mut state.disks
    }
}

/// The resource as Azure returns it (Disk or Snapshot model).
pub fn render(state: &State, key: &str, snapshot: bool) -> Option<Value> {
    let v = map(state, snapshot).get(key)?;
    let id = arm::resource_id(
        &state.subscription,
        &v.resource_group,
        kind(snapshot),
        &v.name,
    );
    let mut creation = json!({ "createOption": v.creation.create_option });
    if let Some(src) = &v.creation.source_resource_id {
        creation["sourceResourceId"] = json!(src);
    }
    if let Some(u) = &v.creation.source_unique_id {
        creation["sourceUniqueId"] = json!(u);
    }
    if let Some(img) = &v.creation.image_reference {
        creation["imageReference"] = json!({ "id": img });
    }
    let tier = v
        .sku
        .split('_')
        .next()
        .unwrap_or("Standard")
        .replace("StandardSSD", "Standard")
        .replace("UltraSSD", "Ultra");
    let mut props = json!({
        "creationData": creation,
        "diskSizeGB": v.size_gb,
        "diskSizeBytes": v.size_gb << 30,
        "uniqueId": v.unique_id,
        "timeCreated": arm::rfc3339(v.time_created),
        "provisioningState": v.provisioning_state,
        "diskState": if snapshot { "Unattached" } else { state.disk_state(key) },
    });
    render_settings(&v.settings, &mut props, snapshot, &v.sku, v.size_gb);
    if let Some(os) = &v.os_type {
        props["osType"] = json!(os);
    }
    if let Some(g) = &v.hyper_v_generation {
        props["hyperVGeneration"] = json!(g);
    }
    if snapshot {
        props["incremental"] = json!(v.incremental);
    } else {
        props["diskIOPSReadWrite"] = json!(120 + v.size_gb.min(1024) * 3);
        props["diskMBpsReadWrite"] = json!(25 + v.size_gb.min(1024) / 8);
    }
    let mut body = json!({
        "id": id,
        "name": v.name,
        "type": format!("Microsoft.Compute/{}", kind(snapshot)),
        "location": v.location,
        "tags": v.tags,
        "sku": { "name": v.sku, "tier": tier },
        "properties": props,
    });
    if let Some(z) = &v.zone {
        body["zones"] = json!([z]);
    }
    if !snapshot {
        if let Some(owner) = state.owner_of(key) {
            body["managedBy"] = json!(state.vm_id(owner));
        }
    }
    Some(body)
}

/// The DiskRP settings of a disk or snapshot, each as its recordings show it: `encryption` with
/// `EncryptionAtRestWithPlatformKey` unless a key of the customer's is set (the spec's
/// Disk_Get example), `networkAccessPolicy` AllowAll and `publicNetworkAccess` Enabled unless
/// set (as the Python SDK recordings and `az disk show` print them), the rest only when set.
fn render_settings(s: &DiskSettings, props: &mut Value, snapshot: bool, sku: &str, size_gb: u64) {
    let mut encryption = json!({
        "type": s.encryption_type.as_deref().unwrap_or("EncryptionAtRestWithPlatformKey"),
    });
    if let Some(des) = &s.disk_encryption_set_id {
        encryption["diskEncryptionSetId"] = json!(des);
    }
    props["encryption"] = encryption;
    props["networkAccessPolicy"] = json!(s.network_access_policy.as_deref().unwrap_or("AllowAll"));
    props["publicNetworkAccess"] = json!(s.public_network_access.as_deref().unwrap_or("Enabled"));
    if let Some(id) = &s.disk_access_id {
        props["diskAccessId"] = json!(id);
    }
    if let Some(t) = &s.security_type {
        let mut sp = json!({ "securityType": t });
        if let Some(des) = &s.secure_vm_disk_encryption_set_id {
            sp["secureVMDiskEncryptionSetId"] = json!(des);
        }
        props["securityProfile"] = sp;
    }
    let mut caps = serde_json::Map::new();
    if let Some(a) = &s.architecture {
        caps.insert("architecture".into(), json!(a));
    }
    if let Some(c) = &s.disk_controller_types {
        caps.insert("diskControllerTypes".into(), json!(c));
    }
    if let Some(n) = s.accelerated_network {
        caps.insert("acceleratedNetwork".into(), json!(n));
    }
    if !caps.is_empty() {
        props["supportedCapabilities"] = Value::Object(caps);
    }
    if let Some(m) = &s.data_access_auth_mode {
        props["dataAccessAuthMode"] = json!(m);
    }
    if !snapshot {
        if let Some(tier) = s.tier.clone().or_else(|| premium_tier(sku, size_gb)) {
            props["tier"] = json!(tier);
        }
        if let Some(b) = s.bursting_enabled {
            props["burstingEnabled"] = json!(b);
        }
    }
}

/// The performance tier DiskRP gives a Premium SSD by its size when none is asked (the size
/// table of Microsoft's disks-types.md, "Premium SSD sizes": P1 4 GiB ... P80 32 TiB).
fn premium_tier(sku: &str, size_gb: u64) -> Option<String> {
    if !sku.starts_with("Premium_") || size_gb == 0 {
        return None;
    }
    const TIERS: [(u64, &str); 15] = [
        (4, "P1"),
        (8, "P2"),
        (16, "P3"),
        (32, "P4"),
        (64, "P6"),
        (128, "P10"),
        (256, "P15"),
        (512, "P20"),
        (1024, "P30"),
        (2048, "P40"),
        (4096, "P50"),
        (8192, "P60"),
        (16384, "P70"),
        (32767, "P80"),
        (u64::MAX, "P80"),
    ];
    TIERS
        .iter()
        .find(|(max, _)| size_gb <= *max)
        .map(|(_, t)| t.to_string())
}

/// The settings a request body gives (each `None` when the body leaves it out).
fn requested_settings(body: &Value) -> DiskSettings {
    let str_at = |path: &[&str]| {
        let mut p = vec!["properties"];
        p.extend_from_slice(path);
        field(body, &p).and_then(Value::as_str).map(String::from)
    };
    DiskSettings {
        encryption_type: str_at(&["encryption", "type"]),
        disk_encryption_set_id: str_at(&["encryption", "diskEncryptionSetId"]),
        security_type: str_at(&["securityProfile", "securityType"]),
        secure_vm_disk_encryption_set_id: str_at(&[
            "securityProfile",
            "secureVMDiskEncryptionSetId",
        ]),
        network_access_policy: str_at(&["networkAccessPolicy"]),
        disk_access_id: str_at(&["diskAccessId"]),
        public_network_access: str_at(&["publicNetworkAccess"]),
        architecture: str_at(&["supportedCapabilities", "architecture"]),
        disk_controller_types: str_at(&["supportedCapabilities", "diskControllerTypes"]),
        accelerated_network: field(
            body,
            &["properties", "supportedCapabilities", "acceleratedNetwork"],
        )
        .and_then(Value::as_bool),
        data_access_auth_mode: str_at(&["dataAccessAuthMode"]),
        tier: str_at(&["tier"]),
        bursting_enabled: field(body, &["properties", "burstingEnabled"]).and_then(Value::as_bool),
    }
}

/// What DiskRP does with each setting on `createOption: Copy`, by its sources:
/// - `securityProfile` is the source's: a disk made from a Trusted Launch snapshot is Trusted
///   Launch (Azure/azure-sdk-for-python#30479, step 3; MicrosoftDocs/azure-docs#112364: the
///   security type "will be greyed out"), and a Copy that names one is refused (below);
/// - `supportedCapabilities` describe the bits, so they follow them (inferred);
/// - `encryption`: an incremental snapshot keeps its disk's customer-managed key ("If this
///   feature is enabled for a disk with incremental snapshots, it can't be disabled on that disk
///   or its snapshots", azure-docs includes/virtual-machines-disks-encryption-limitations.md);
///   anything else is encrypted as the request says, by default with a platform key (the spec's
///   `Encryption` default);
/// - `hyperVGeneration` is not inherited: a copy made without it is a V1 disk
///   (Azure/azure-cli#16321: "need to clone disk with --hyper-v-generation V2";
///   MicrosoftDocs/SupportArticles-docs#338); `osType` is kept (inferred);
/// - network access, disk access, data access mode, tier and bursting are properties of the new
///   resource, defaulted when the request leaves them out (inferred).
fn copied_settings(
    mut wanted: DiskSettings,
    src: &DiskSettings,
    incremental_snapshot: bool,
) -> DiskSettings {
    wanted.security_type = src.security_type.clone();
    wanted.secure_vm_disk_encryption_set_id = wanted
        .secure_vm_disk_encryption_set_id
        .or_else(|| src.secure_vm_disk_encryption_set_id.clone());
    wanted.architecture = wanted.architecture.or_else(|| src.architecture.clone());
    wanted.disk_controller_types = wanted
        .disk_controller_types
        .or_else(|| src.disk_controller_types.clone());
    wanted.accelerated_network = wanted.accelerated_network.or(src.accelerated_network);
    if incremental_snapshot && wanted.encryption_type.is_none() {
        wanted.encryption_type = src.encryption_type.clone();
        wanted.disk_encryption_set_id = src.disk_encryption_set_id.clone();
    }
    wanted
}

/// A resource group's disks or snapshots, or the subscription's (`rg: None`).
pub fn list(emu: &Emu, call: &Call, rg: Option<&str>, snapshot: bool) -> ArmResult<Reply> {
    let state = emu.lock();
    let prefix = super::group_prefix(&state, rg)?;
    let value: Vec<Value> = map(&state, snapshot)
        .keys()
        .filter(|k| k.starts_with(&prefix))
        .filter_map(|k| render(&state, k, snapshot))
        .collect();
    Ok(super::page(emu, &state, call, rg, value))
}

pub async fn handle(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    name: &str,
    snapshot: bool,
) -> ArmResult<Reply> {
    match call.method.as_str() {
        "GET" => {
            let state = emu.lock();
            let rg = group(&state, rg)?;
            render(&state, &arm::key(rg, name), snapshot)
                .map(|b| Reply::json(200, b))
                .ok_or_else(|| ArmError::not_found(kind(snapshot), rg, name))
        }
        "PUT" => put(emu, call, rg, name, snapshot).await,
        "PATCH" => patch(emu, call, rg, name, snapshot),
        "DELETE" => delete(emu, call, rg, name, snapshot),
        m => Err(ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The requested resource does not support http method '{m}'."),
        )),
    }
}

/// What a create copies its bytes from.
enum Source {
    Empty(u64),
    Copy(String),
}

async fn put(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    name: &str,
    snapshot: bool,
) -> ArmResult<Reply> {
    let body = call.json()?;
    let key = arm::key(rg, name);
    let (source, vol, seconds) = {
        let mut state = emu.lock();
        let rg = group(&state, rg)?.to_string();
        if let Some(existing) = map(&state, snapshot).get(&key).cloned() {
            return update_existing(emu, &mut state, call, &key, snapshot, existing, &body);
        }
        arm::check_volume_name(name)?;
        super::location(
            &state,
            &body,
            &format!("Microsoft.Compute/{}", kind(snapshot)),
        )?;
        let cd = field(&body, &["properties", "creationData"])
            .ok_or_else(|| rules::missing("creationData"))?;
        let option = field(cd, &["createOption"])
            .and_then(Value::as_str)
            .unwrap_or("");
        let size_gb = field(&body, &["properties", "diskSizeGB"]).and_then(Value::as_u64);
        let mut vol = Volume {
            resource_group: rg.clone(),
            name: name.to_string(),
            location: state.location.clone(),
            zone: if snapshot { None } else { zone(&body)? },
            sku: field(&body, &["sku", "name"])
                .and_then(Value::as_str)
                .unwrap_or("Standard_LRS")
                .to_string(),
            size_gb: size_gb.unwrap_or(0),
            hyper_v_generation: field(&body, &["properties", "hyperVGeneration"])
                .and_then(Value::as_str)
                .map(String::from),
            os_type: field(&body, &["properties", "osType"])
                .and_then(Value::as_str)
                .map(String::from),
            creation: Creation {
                create_option: option.to_string(),
                source_resource_id: None,
                source_unique_id: None,
                image_reference: None,
            },
            tags: tags(&body)?.unwrap_or_default(),
            provisioning_state: "Updating".into(),
            time_created: arm::now(),
            unique_id: arm::guid(),
            image: format!("{}.img", arm::guid()),
            incremental: field(&body, &["properties", "incremental"])
                .and_then(Value::as_bool)
                .unwrap_or(false),
            settings: requested_settings(&body),
        };
        let (source, seconds) = match option.to_ascii_lowercase().as_str() {
            "empty" if !snapshot => {
                let gb = size_gb
                    .filter(|g| *g > 0)
                    .ok_or_else(|| rules::missing("diskSizeGB"))?;
                (Source::Empty(gb), DISK_EMPTY)
            }
            "copy" => {
                let src_id = field(cd, &["sourceResourceId"])
                    .and_then(Value::as_str)
                    .ok_or_else(|| rules::missing("creationData.sourceResourceId"))?;
                let src = source_volume(&state, src_id)?;
                if let Some(t) = &vol.settings.security_type {
                    // Azure/azure-cli#22561 (recorded 2022): 400 BadRequest for a Copy that names
                    // a security type.
                    return Err(ArmError::bad_request(
                        "BadRequest",
                        format!("Security Type '{t}' is not supported for CreateOption 'Copy'. Supported create options are FromImage, Import, ImportSecure, UploadPreparedSecure."),
                    ));
                }
                if let (Some(from), Some(to)) = (&src.zone, &vol.zone) {
                    if to != from {
                        // Azure/azure-sdk-for-java#11759 (recorded 2020).
                        return Err(ArmError::bad_request(
                            "BadRequest",
                            format!("The resource '{name}' in an availability zone cannot be copied from the source '{src_id}' in a different availability zone."),
                        ));
                    }
                }
                if let Some(gb) = size_gb {
                    rules::not_smaller(name, src.size_gb, gb)?;
                }
                vol.size_gb = size_gb.unwrap_or(src.size_gb);
                vol.os_type = vol.os_type.or(src.os_type.clone());
                vol.settings = copied_settings(
                    vol.settings.clone(),
                    &src.settings,
                    snapshot && vol.incremental,
                );
                vol.creation.create_option = "Copy".into();
                vol.creation.source_resource_id = Some(src_id.to_string());
                vol.creation.source_unique_id = Some(src.unique_id.clone());
                (
                    Source::Copy(src.image.clone()),
                    if snapshot { SNAPSHOT_CREATE } else { DISK_COPY },
                )
            }
            other => {
                // Not an Azure rule: Azure has more create options; this emulator says which it has.
                return Err(ArmError::bad_request(
                    "InvalidParameter",
                    format!(
                        "createOption '{other}' is not supported by the rescue emulator for {}: use Copy (from a disk or snapshot){}.",
                        kind(snapshot),
                        if snapshot { "" } else { " or Empty" }
                    ),
                ));
            }
        };
        (source, vol, seconds)
    };
    // The bytes are copied before the resource is recorded: a snapshot is a point-in-time copy
    // of its source, and an emulator killed mid-copy leaves no half-copied resource behind.
    let (src_dir, dst) = (emu.images.clone(), emu.images.join(&vol.image));
    let target = dst.clone();
    tokio::task::spawn_blocking(move || match source {
        Source::Empty(gb) => images::create_sparse(&target, gb << 30),
        Source::Copy(src) => images::copy_image(&src_dir.join(src), &target),
    })
    .await
    .map_err(|e| ArmError::internal(e.to_string()))?
    .map_err(|e| {
        let _ = std::fs::remove_file(&dst);
        ArmError::internal(format!("copying the image failed: {e:#}"))
    })?;
    let mut state = emu.lock();
    if map(&state, snapshot).contains_key(&key) {
        let _ = std::fs::remove_file(&dst);
        return Err(rules::concurrent_request());
    }
    map_mut(&mut state, snapshot).insert(key.clone(), vol);
    let kind = OpKind::VolumeCreate {
        snapshot,
        key: key.clone(),
    };
    let op = emu.begin(&mut state, Family::Disk, kind, seconds, call);
    emu.save(&state)?;
    let body = render(&state, &key, snapshot).expect("just inserted");
    let reply = Reply::json(202, body).retry_after(2.0, emu.time_scale);
    Ok(emu.lro_headers(&state, &op, reply, true))
}

/// The disk or snapshot a copy reads from.
/// (inferred) No recording shows DiskRP's words for a malformed or foreign source id; the texts
/// name the parameter as CRP's "Required parameter" family does.
fn source_volume<'a>(state: &'a State, id: &str) -> ArmResult<&'a Volume> {
    let (rg, kind, name) = arm::parse_resource_id(id).ok_or_else(|| {
        ArmError::bad_request("InvalidParameter", format!("The value '{id}' of parameter 'creationData.sourceResourceId' is not a valid resource id."))
    })?;
    let map = match kind.as_str() {
        "disks" => &state.disks,
        "snapshots" => &state.snapshots,
        _ => {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!("Copy source '{id}' must be a managed disk or a snapshot."),
            ))
        }
    };
    let v = map
        .get(&arm::key(&rg, &name))
        .ok_or_else(|| ArmError::not_found(&kind, &rg, &name))?;
    if v.provisioning_state != "Succeeded" {
        // (inferred) a copy racing its source's own creation.
        return Err(rules::concurrent_request());
    }
    Ok(v)
}

fn zone(body: &Value) -> ArmResult<Option<String>> {
    match field(body, &["zones"]) {
        None => Ok(None),
        Some(Value::Array(z)) if z.is_empty() => Ok(None),
        Some(Value::Array(z)) if z.len() == 1 && z[0].is_string() => {
            Ok(z[0].as_str().map(String::from))
        }
        Some(_) => Err(ArmError::bad_request(
            "InvalidParameter",
            "A disk can be in exactly one zone: 'zones' must hold one zone.",
        )),
    }
}

/// PUT on an existing disk or snapshot: tags and size may change, its source may not.
fn update_existing(
    emu: &Emu,
    state: &mut State,
    call: &Call,
    key: &str,
    snapshot: bool,
    existing: Volume,
    body: &Value,
) -> ArmResult<Reply> {
    if let Some(src) =
        field(body, &["properties", "creationData", "sourceResourceId"]).and_then(Value::as_str)
    {
        if !existing
            .creation
            .source_resource_id
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(src))
        {
            // ansible/ansible#38883: "PropertyChangeNotAllowed ... Changing property
            // 'creationData' is not allowed. Target: creationData".
            return Err(ArmError::conflict(
                "PropertyChangeNotAllowed",
                "Changing property 'creationData' is not allowed.",
            )
            .with_target("creationData"));
        }
    }
    apply_update(emu, state, call, key, snapshot, existing, body, 200)
}

fn patch(emu: &Emu, call: &Call, rg: &str, name: &str, snapshot: bool) -> ArmResult<Reply> {
    let body = call.json()?;
    let mut state = emu.lock();
    let rg = group(&state, rg)?.to_string();
    let key = arm::key(&rg, name);
    let existing = map(&state, snapshot)
        .get(&key)
        .cloned()
        .ok_or_else(|| ArmError::not_found(kind(snapshot), &rg, name))?;
    apply_update(emu, &mut state, call, &key, snapshot, existing, &body, 202)
}

#[allow(clippy::too_many_arguments)]
fn apply_update(
    emu: &Emu,
    state: &mut State,
    call: &Call,
    key: &str,
    snapshot: bool,
    mut v: Volume,
    body: &Value,
    status: u16,
) -> ArmResult<Reply> {
    if v.provisioning_state != "Succeeded" {
        // (inferred) an update racing the resource's own operation.
        return Err(rules::concurrent_request());
    }
    if let Some(gb) = field(body, &["properties", "diskSizeGB"]).and_then(Value::as_u64) {
        if gb != v.size_gb {
            rules::not_smaller(&v.name, v.size_gb, gb)?;
            if !snapshot {
                rules::resizable(state, key)?;
            }
        }
        v.size_gb = gb;
    }
    v.settings = updated_settings(v.settings.clone(), requested_settings(body));
    if let Some(t) = tags(body)? {
        v.tags = t;
    }
    if let Some(sku) = field(body, &["sku", "name"]).and_then(Value::as_str) {
        v.sku = sku.to_string();
    }
    if call.lro_failed() {
        v = map(state, snapshot)[key].clone();
    }
    v.provisioning_state = "Updating".into();
    map_mut(state, snapshot).insert(key.to_string(), v);
    let op = emu.begin(
        state,
        Family::Disk,
        OpKind::VolumeCreate {
            snapshot,
            key: key.to_string(),
        },
        VOLUME_UPDATE,
        call,
    );
    emu.save(state)?;
    let reply = Reply::json(status, render(state, key, snapshot).expect("present"))
        .retry_after(2.0, emu.time_scale);
    Ok(emu.lro_headers(state, &op, reply, true))
}

/// A PATCH (or PUT of an existing resource) changes what it names and keeps the rest.
fn updated_settings(cur: DiskSettings, new: DiskSettings) -> DiskSettings {
    DiskSettings {
        encryption_type: new.encryption_type.or(cur.encryption_type),
        disk_encryption_set_id: new.disk_encryption_set_id.or(cur.disk_encryption_set_id),
        security_type: new.security_type.or(cur.security_type),
        secure_vm_disk_encryption_set_id: new
            .secure_vm_disk_encryption_set_id
            .or(cur.secure_vm_disk_encryption_set_id),
        network_access_policy: new.network_access_policy.or(cur.network_access_policy),
        disk_access_id: new.disk_access_id.or(cur.disk_access_id),
        public_network_access: new.public_network_access.or(cur.public_network_access),
        architecture: new.architecture.or(cur.architecture),
        disk_controller_types: new.disk_controller_types.or(cur.disk_controller_types),
        accelerated_network: new.accelerated_network.or(cur.accelerated_network),
        data_access_auth_mode: new.data_access_auth_mode.or(cur.data_access_auth_mode),
        tier: new.tier.or(cur.tier),
        bursting_enabled: new.bursting_enabled.or(cur.bursting_enabled),
    }
}

fn delete(emu: &Emu, call: &Call, rg: &str, name: &str, snapshot: bool) -> ArmResult<Reply> {
    let mut state = emu.lock();
    let rg = group(&state, rg)?.to_string();
    let key = arm::key(&rg, name);
    if !map(&state, snapshot).contains_key(&key) {
        return Ok(Reply::empty(204));
    }
    if !snapshot {
        rules::disk_deletable(&state, &key)?;
    }
    map_mut(&mut state, snapshot)
        .get_mut(&key)
        .expect("present")
        .provisioning_state = "Deleting".into();
    let op = emu.begin(
        &mut state,
        Family::Disk,
        OpKind::VolumeDelete { snapshot, key },
        VOLUME_DELETE,
        call,
    );
    emu.save(&state)?;
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}
