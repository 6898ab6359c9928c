//! `include_dir!` embeds `workflows/` (src/workflow/builtin.rs). The compiler tracks the files it
//! embedded, not the directory, so a workflow added there would go unnoticed without this.
fn main() {
    println!("cargo:rerun-if-changed=workflows");
}
