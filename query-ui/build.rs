//! Builds the web UI (TypeScript under `web/`, bundled by Vite) into `OUT_DIR/ui` and writes
//! `OUT_DIR/ui_assets.rs`, the table of files `src/ui.rs` embeds, so `cargo build` alone yields a
//! binary that serves the whole UI offline. `npm ci` runs when `web/node_modules` is missing or
//! older than `package-lock.json`; `npm run build` runs whenever Cargo sees a UI source change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const INSTALL_HINT: &str = "the web UI needs Node.js and npm: apt-get install -y nodejs npm";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = manifest.join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("ui");
    for watched in ["src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json"] {
        println!("cargo:rerun-if-changed=web/{watched}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    // `goVersion` of /api/v1/status/buildinfo reports the compiler instead.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Ok(out) = Command::new(rustc).arg("--version").output() {
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!("cargo:rustc-env=TARSIER_RUSTC_VERSION={version}");
    }

    match Command::new("npm").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("npm not found on PATH; {INSTALL_HINT}"),
    }
    if needs_install(&web) {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&web), "npm ci");
    }
    let out_arg = out.to_str().expect("OUT_DIR is not UTF-8");
    run(
        Command::new("npm")
            .args(["run", "build", "--", "--outDir", out_arg, "--emptyOutDir", "--logLevel", "warn"])
            .current_dir(&web),
        "npm run build",
    );

    let mut files = Vec::new();
    collect(&out, &out, &mut files);
    files.sort();
    assert!(files.iter().any(|f| f == "index.html"), "the UI build wrote no index.html into {}", out.display());
    let mut table = String::from(
        "/// (path under /ui/, contents) of every built UI file.\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        let full = out.join(f);
        table.push_str(&format!("    ({f:?}, include_bytes!({:?})),\n", full.to_str().expect("UTF-8 path")));
    }
    table.push_str("];\n");
    std::fs::write(out.parent().expect("OUT_DIR").join("ui_assets.rs"), table).expect("write ui_assets.rs");
}

/// `node_modules` missing, or older than the lock file npm installed it from.
fn needs_install(web: &Path) -> bool {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = mtime(&web.join("node_modules/.package-lock.json"));
    let lock = mtime(&web.join("package-lock.json")).unwrap_or(SystemTime::UNIX_EPOCH);
    installed.is_none_or(|t| t < lock)
}

fn run(cmd: &mut Command, what: &str) {
    // Cargo reads a build script's stdout for directives: keep the tools' chatter on stderr.
    let status = cmd
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .unwrap_or_else(|e| panic!("{what} could not start ({e}); {INSTALL_HINT}"));
    assert!(status.success(), "{what} failed in query-ui/web ({status}); run it there to see why");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            files.push(rel);
        }
    }
}
