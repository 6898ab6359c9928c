//! Resource handlers: managed disks and snapshots (`volume`), virtual machines (`vm`), and the
//! operation-status URLs.

pub mod vm;
pub mod vm_actions;
mod vm_create;
pub mod volume;

use std::sync::Arc;

use serde_json::Value;

use super::arm::{ArmError, ArmResult};
use super::http::{Call, Reply};
use super::operations::Status;
use super::routes::Route;
use super::server::Emu;
use super::state::State;

pub use volume::render as render_volume;

pub async fn dispatch(emu: &Arc<Emu>, call: &Call) -> ArmResult<Reply> {
    let m = call.method.as_str();
    match (&call.route, m) {
        (Route::Disks { rg }, "GET") => volume::list(emu, rg, false),
        (Route::Snapshots { rg }, "GET") => volume::list(emu, rg, true),
        (Route::Disk { rg, name }, _) => volume::handle(emu, call, rg, name, false).await,
        (Route::Snapshot { rg, name }, _) => volume::handle(emu, call, rg, name, true).await,
        (Route::Vms { rg }, "GET") => vm::list(emu, rg),
        (Route::Vm { rg, name }, "GET") => vm::get(emu, call, rg, name),
        (Route::Vm { rg, name }, "PUT" | "PATCH") => vm::update(emu, call, rg, name).await,
        (Route::Vm { rg, name }, "DELETE") => vm_actions::delete(emu, call, rg, name),
        (Route::VmInstanceView { rg, name }, "GET") => vm::instance_view_reply(emu, rg, name),
        (Route::VmAction { rg, name, action }, "POST") => {
            vm_actions::action(emu, call, rg, name, action).await
        }
        (Route::VmAction { rg, name, action }, "GET")
            if action.eq_ignore_ascii_case("retrieveBootDiagnosticsData") =>
        {
            vm_actions::action(emu, call, rg, name, action).await
        }
        (Route::Operation { id, .. }, "GET") => operation(emu, call, id),
        _ => Err(ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The requested resource does not support http method '{m}'."),
        )),
    }
}

/// Azure-AsyncOperation (status body) and Location (202 until done, then the final answer).
fn operation(emu: &Emu, call: &Call, id: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let op = state.operations.get(id).ok_or_else(|| {
        ArmError::new(
            404,
            "NotFound",
            format!("The operation '{id}' could not be found."),
        )
    })?;
    let monitor = call
        .query("monitor")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !monitor {
        let reply = Reply::json(200, op.status_body());
        return Ok(if op.status == Status::InProgress {
            reply.retry_after(10.0, emu.time_scale)
        } else {
            reply
        });
    }
    match op.status {
        Status::InProgress => {
            let reply = Reply::empty(202).retry_after(10.0, emu.time_scale);
            Ok(emu.lro_headers(&state, op, reply, true))
        }
        Status::Succeeded => Ok(match &op.output {
            Some(out) => Reply::json(200, out.clone()),
            None => Reply::empty(200),
        }),
        Status::Failed | Status::Canceled => {
            let e = op
                .error
                .clone()
                .unwrap_or_else(|| ArmError::internal("The operation failed."));
            Err(e)
        }
    }
}

/// Looks a resource group up and returns its name as created.
pub fn group<'a>(state: &'a State, rg: &str) -> ArmResult<&'a str> {
    state.check_group(rg)?;
    Ok(state.resource_groups[&rg.to_ascii_lowercase()].as_str())
}

/// A JSON object's field, case-sensitively as ARM's JSON is.
pub fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

pub fn tags(v: &Value) -> ArmResult<Option<serde_json::Map<String, Value>>> {
    match v.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(ArmError::bad_request(
            "InvalidRequestContent",
            "The property 'tags' must be an object.",
        )),
    }
}
