//! `rescue doctor`: what rescue would act on, and whether it can. Each check says what it found
//! and, when it fails, one line to fix it:
//! - the credential found, and which kind (a service principal, a user, a managed identity);
//! - the subscription, with its name (`GET /subscriptions/{id}`);
//! - with `-g RG`: whether the identity may write VMs and disks there (its permissions on the
//!   resource group, `Microsoft.Authorization/permissions`);
//! - the local prerequisites of the emulator (root, loop devices, fdisk, e2fsprogs, xfsprogs).
//!
//! Exit 0 when every check passes, 1 otherwise; it changes nothing.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::settings::{StateArgs, TargetArgs};
use super::target::TargetRecord;
use super::{Failure, Flags, Settings};
use crate::exit;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Also check your permissions in this resource group (the broken VM's).
    #[arg(long, short = 'g', value_name = "RG")]
    pub resource_group: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl DoctorArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            target: Some(&self.target),
            ..Flags::default()
        }
    }
}

#[derive(Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    found: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn check(check: &'static str, ok: bool, found: String, fix: &str) -> Check {
    Check {
        check,
        ok,
        found,
        fix: (!ok).then(|| fix.to_string()),
    }
}

/// What a repair writes, as RBAC names the operations (Microsoft.Compute resource provider
/// operations, Microsoft Learn "Azure permissions for Compute").
const NEEDED: &[&str] = &[
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachines/deallocate/action",
    "Microsoft.Compute/virtualMachines/start/action",
    "Microsoft.Compute/virtualMachines/runCommands/write",
    "Microsoft.Compute/disks/write",
    "Microsoft.Compute/snapshots/write",
];

/// The credential the chain would use, by the variables that select it (azure_identity's
/// `DefaultAzureCredential`: environment, workload identity, then managed identity, then the
/// Azure CLI).
fn credential_kind(target: &super::Target, auth: crate::azure::Auth) -> String {
    use crate::azure::Auth;
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let named = match auth {
        Auth::Default => None,
        Auth::Cli => Some("the Azure CLI's `az login` (--auth cli)"),
        Auth::ManagedIdentity if set("IDENTITY_ENDPOINT") => {
            Some("managed identity at IDENTITY_ENDPOINT (--auth msi)")
        }
        Auth::ManagedIdentity => Some("managed identity of this VM, from IMDS (--auth msi)"),
        Auth::Env => Some("service principal from AZURE_* variables (--auth env)"),
        Auth::Workload => Some("workload identity, AZURE_FEDERATED_TOKEN_FILE (--auth workload)"),
    };
    if let (Some(named), false) = (
        named,
        matches!(target, super::Target::InProcessEmulator { .. }),
    ) {
        return named.into();
    }
    match target {
        super::Target::InProcessEmulator { .. } => {
            "the emulator's own service principal (client secret)".into()
        }
        super::Target::Emulator { .. } => {
            "client secret of AZURE_CLIENT_ID (from `rescue emulator serve`)".into()
        }
        super::Target::Azure { .. } if set("AZURE_FEDERATED_TOKEN_FILE") => {
            "workload identity (AZURE_FEDERATED_TOKEN_FILE)".into()
        }
        super::Target::Azure { .. } if set("AZURE_CLIENT_SECRET") => {
            "service principal with a client secret (AZURE_CLIENT_SECRET)".into()
        }
        super::Target::Azure { .. } if set("AZURE_CLIENT_CERTIFICATE_PATH") => {
            "service principal with a certificate (AZURE_CLIENT_CERTIFICATE_PATH)".into()
        }
        super::Target::Azure { .. } if set("IDENTITY_ENDPOINT") || set("MSI_ENDPOINT") => {
            "managed identity (App Service)".into()
        }
        super::Target::Azure { .. } => {
            "managed identity of this VM if it has one, else the Azure CLI's `az login`".into()
        }
    }
}

fn on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/sbin", "/usr/sbin"].map(Into::into))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn local_checks() -> Vec<Check> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tool = |name: &'static str, program: &str, package: &str| {
        let found = on_path(program);
        check(
            name,
            found.is_some(),
            found.map_or_else(
                || format!("no `{program}` on PATH"),
                |p| p.display().to_string(),
            ),
            &format!("apt-get install {package} (or run `bash .ci/setup`)"),
        )
    };
    vec![
        check(
            "emulator: root",
            root,
            if root {
                "running as root".into()
            } else {
                "not root".into()
            },
            "run the emulator as root (sudo): it attaches disk images to loop devices",
        ),
        check(
            "emulator: loop devices",
            std::path::Path::new("/dev/loop-control").exists(),
            if std::path::Path::new("/dev/loop-control").exists() {
                "/dev/loop-control".into()
            } else {
                "no /dev/loop-control".into()
            },
            "modprobe loop (in a container: run it with --privileged or give it /dev/loop*)",
        ),
        tool("emulator: fdisk", "sfdisk", "fdisk"),
        tool("emulator: e2fsprogs", "e2fsck", "e2fsprogs"),
        tool("emulator: xfsprogs", "xfs_repair", "xfsprogs"),
    ]
}

pub fn run(args: &DoctorArgs, settings: &Settings) -> ExitCode {
    super::run::block_on(doctor(args, settings))
}

async fn doctor(args: &DoctorArgs, settings: &Settings) -> ExitCode {
    let mut checks = vec![check(
        "credential",
        true,
        credential_kind(&settings.target, settings.auth),
        "",
    )];
    let scratch = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            return Failure::new(
                exit::STEP_FAILED,
                "io",
                format!("cannot create a scratch directory: {e}"),
            )
            .report()
        }
    };
    let record = TargetRecord::for_new_run(&settings.target, scratch.path());
    let connected = super::target::connect(&record, true, None, settings).await;
    let mut target = String::new();
    match connected {
        Err(e) => checks.push(check(
            "sign-in",
            false,
            e.message.clone(),
            e.hint.as_deref().unwrap_or("check the credential above"),
        )),
        Ok(connected) => {
            let azure = connected.env.azure.clone().expect("connected to Azure");
            target = super::run::target_words(&record, &connected.env).await;
            let identity = azure.identity().await.map(|i| i.to_string());
            checks.push(check(
                "sign-in",
                identity.is_ok(),
                identity.unwrap_or_else(|e| e.to_string()),
                "see the credential above",
            ));
            let subscription = azure.subscription_details().await;
            checks.push(match &subscription {
                Ok(s) => {
                    let state = s.get("state").and_then(|v| v.as_str()).unwrap_or("?");
                    check(
                        "subscription",
                        state == "Enabled",
                        format!(
                            "{} \"{}\" ({state})",
                            azure.subscription(),
                            s.get("displayName").and_then(|v| v.as_str()).unwrap_or("?")
                        ),
                        "pick an enabled subscription: --subscription ID (`az account list -o table`)",
                    )
                }
                Err(e) => check(
                    "subscription",
                    false,
                    e.to_string(),
                    "check --subscription / AZURE_SUBSCRIPTION_ID (`az account list -o table`)",
                ),
            });
            if let Some(rg) = &args.resource_group {
                checks.push(match azure.permissions(rg).await {
                    Ok(permissions) => {
                        let missing: Vec<&str> = NEEDED
                            .iter()
                            .copied()
                            .filter(|op| !crate::azure::account::allows(&permissions, op))
                            .collect();
                        check(
                            "permissions",
                            missing.is_empty(),
                            if missing.is_empty() {
                                format!("may write VMs, disks and snapshots in {rg}")
                            } else {
                                format!("in {rg}, may not: {}", missing.join(", "))
                            },
                            "ask for `Virtual Machine Contributor` and `Disk Snapshot Contributor` (or Contributor) on the resource group",
                        )
                    }
                    Err(e) => check(
                        "permissions",
                        false,
                        e.to_string(),
                        "check the resource group's name (`az group list -o table`)",
                    ),
                });
            }
            connected.close().await;
        }
    }
    if matches!(settings.target, super::Target::InProcessEmulator { .. })
        || std::env::var_os("RESCUE_EMULATOR_URL").is_none()
    {
        checks.extend(local_checks());
    }
    let ok = checks.iter().all(|c| c.ok);
    let doc = json!({"format_version": 1, "target": target, "ok": ok, "checks": checks});
    let text = || {
        let mut out = String::new();
        if !target.is_empty() {
            out.push_str(&format!("target: {target}\n"));
        }
        for c in &checks {
            out.push_str(&format!(
                "{} {:<22} {}\n",
                if c.ok { "✔" } else { "✘" },
                c.check,
                c.found
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("  {:<22} fix: {fix}\n", ""));
            }
        }
        out
    };
    if let Err(f) = super::output::document(&doc, text, None) {
        return f.report();
    }
    ExitCode::from(if ok { exit::SUCCESS } else { exit::STEP_FAILED })
}
