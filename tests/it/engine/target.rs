//! The run's target is journaled: a killed `--emulator` run resumes against the same emulator
//! state (restarted from `<run_dir>/emulator`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;

use super::run_support::*;

#[test]
fn killed_emulator_run_resumes_against_the_same_emulator_state() {
    let s = Scratch::new();
    let wf = s.workflow(
        "az.yaml",
        r#"
name: inspect-then-nap
steps:
  - id: vm
    uses: azure.vm.inspect
    with:
      resource_group: MC_prod-rg_prod-aks_westeurope
      vm: aks-nodepool1-31415926-vm2
  - id: nap
    uses: core.sleep
    with: { duration: 1s }
  - id: show
    uses: core.echo
    with: { message: "${{ steps.vm.outputs.power_state }}" }
outputs:
  disk: "${{ steps.vm.outputs.os_disk_name }}"
"#,
    );
    let child = s.spawn(&["run", "--emulator", wf.to_str().unwrap()]);
    let id = s.wait_for_step("nap", "running");
    signal(&child, libc::SIGKILL);
    assert_eq!(wait_output(child).status.signal(), Some(libc::SIGKILL));

    let journal = s.journal(&id);
    assert_eq!(journal["target"]["kind"], "in_process_emulator");
    let emulator_dir = s.run_dir(&id).join("emulator");
    assert_eq!(
        journal["target"]["data_dir"],
        emulator_dir.display().to_string()
    );
    assert_eq!(
        std::fs::metadata(&emulator_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    let out = s.run(&["resume", &id]);
    assert_exit(&out, 0);
    let journal = s.journal(&id);
    assert_eq!(journal["steps"][2]["outputs"]["message"], "running");
    assert!(journal["outputs"]["disk"]
        .as_str()
        .unwrap()
        .starts_with("aks-nodepool1-31415926-vm2_OsDisk"));
}
