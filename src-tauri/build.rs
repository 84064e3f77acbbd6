// Build script of the desktop app: lets tauri-build read `tauri.conf.json`, check the icons and
// capabilities, and prepare what `tauri::generate_context!()` embeds. The app's commands each have
// an `allow-…` permission in `permissions/commands.toml` (beside this file), which the capability
// in tauri.conf.json grants by name: a command not granted there cannot be invoked.

fn main() {
    println!("cargo:rerun-if-changed=src-tauri/permissions");
    // An absolute pattern: the permission files are found whatever the working directory.
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let pattern: &'static str =
        Box::leak(format!("{dir}/src-tauri/permissions/*.toml").into_boxed_str());
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().permissions_path_pattern(pattern)),
    )
    .expect("tauri-build failed");
}
