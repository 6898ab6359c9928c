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
use super::super::state::{Creation, State, Volume};
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
        "encryption": { "type": "EncryptionAtRestWithPlatformKey" },
        "networkAccessPolicy": "AllowAll",
        "publicNetworkAccess": "Enabled",
        "timeCreated": arm::rfc3339(v.time_created),
        "provisioningState": v.provisioning_state,
        "diskState": if snapshot { "Unattached" } else { state.disk_state(key) },
    });
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

pub fn list(emu: &Emu, rg: &str, snapshot: bool) -> ArmResult<Reply> {
    let state = emu.lock();
    group(&state, rg)?;
    let prefix = format!("{}/", rg.to_ascii_lowercase());
    let value: Vec<Value> = map(&state, snapshot)
        .keys()
        .filter(|k| k.starts_with(&prefix))
        .filter_map(|k| render(&state, k, snapshot))
        .collect();
    Ok(Reply::json(200, json!({ "value": value })))
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
        let location = field(&body, &["location"])
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?;
        if !location
            .replace(' ', "")
            .eq_ignore_ascii_case(&state.location)
        {
            return Err(ArmError::bad_request(
                "LocationNotAvailableForResourceType",
                format!("The provided location '{location}' is not available for resource type 'Microsoft.Compute/{}'. This emulator's region is '{}'.", kind(snapshot), state.location),
            ));
        }
        let cd = field(&body, &["properties", "creationData"]).ok_or_else(|| {
            ArmError::bad_request(
                "InvalidParameter",
                "Required parameter 'creationData' is missing (null).",
            )
        })?;
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
        };
        let (source, seconds) = match option.to_ascii_lowercase().as_str() {
            "empty" if !snapshot => {
                let gb = size_gb.filter(|g| *g > 0).ok_or_else(|| {
                    ArmError::bad_request("InvalidParameter", "Required parameter 'diskSizeGB' is missing (null).")
                })?;
                (Source::Empty(gb), DISK_EMPTY)
            }
            "copy" => {
                let src_id = field(cd, &["sourceResourceId"]).and_then(Value::as_str).ok_or_else(|| {
                    ArmError::bad_request("InvalidParameter", "Required parameter 'creationData.sourceResourceId' is missing (null).")
                })?;
                let src = source_volume(&state, src_id)?;
                if let Some(gb) = size_gb {
                    if gb < src.size_gb {
                        return Err(ArmError::bad_request(
                            "BadRequest",
                            format!("The specified disk size {gb} GB is smaller than the size of the corresponding disk snapshot or image {} GB.", src.size_gb),
                        ));
                    }
                }
                vol.size_gb = size_gb.unwrap_or(src.size_gb);
                vol.hyper_v_generation = vol.hyper_v_generation.or(src.hyper_v_generation.clone());
                vol.os_type = vol.os_type.or(src.os_type.clone());
                vol.creation.create_option = "Copy".into();
                vol.creation.source_resource_id = Some(src_id.to_string());
                vol.creation.source_unique_id = Some(src.unique_id.clone());
                (Source::Copy(src.image.clone()), if snapshot { SNAPSHOT_CREATE } else { DISK_COPY })
            }
            other => {
                return Err(ArmError::bad_request(
                    "InvalidParameter",
                    format!(
                        "createOption '{other}' is not supported by the rescue emulator for {}: use Copy (from a disk or snapshot){}.",
                        kind(snapshot),
                        if snapshot { "" } else { " or Empty" }
                    ),
                ))
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
        return Err(ArmError::conflict(
            "Conflict",
            format!("'{name}' was created by a concurrent request; retry to update it."),
        ));
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
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "The source '{name}' cannot be copied while its provisioning state is {}.",
                v.provisioning_state
            ),
        ));
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
            return Err(ArmError::conflict(
                "PropertyChangeNotAllowed",
                "Changing property 'creationData.sourceResourceId' is not allowed.",
            ));
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
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "The {} '{}' cannot be updated while its provisioning state is {}.",
                &kind(snapshot)[..kind(snapshot).len() - 1],
                v.name,
                v.provisioning_state
            ),
        ));
    }
    if let Some(gb) = field(body, &["properties", "diskSizeGB"]).and_then(Value::as_u64) {
        if gb < v.size_gb {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!(
                    "Disk '{}' cannot be resized from {} GB to {gb} GB: disks can only grow.",
                    v.name, v.size_gb
                ),
            ));
        }
        v.size_gb = gb;
    }
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
