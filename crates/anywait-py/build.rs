//! Compiles the thin C layout table against the target interpreter's own headers (and
//! turns it into a Rust constant), and tells the Rust code which interpreter it is
//! built for.
//!
//! The include directory comes from `ANYWAIT_PYTHON_INCLUDE` when set (cross builds for
//! another interpreter, e.g. in a chroot), else from asking the interpreter PyO3 builds
//! for. An interpreter anywait does not support still gets a module: one whose import
//! raises `ImportError` naming the interpreter and what is supported (cfg
//! `anywait_unsupported`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use pyo3_build_config::{BuildFlag, PythonAbiKind, PythonImplementation};

const SUPPORTED: &str = "CPython 3.11, 3.12, 3.13, 3.14 and 3.15 with the GIL, on 64-bit Linux";

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    println!("cargo::rustc-check-cfg=cfg(anywait_unsupported)");
    println!("cargo:rerun-if-env-changed=ANYWAIT_PYTHON_INCLUDE");
    println!("cargo:rerun-if-changed=csrc/layout.c");

    let config = pyo3_build_config::get();
    let version = (config.version().major, config.version().minor);
    let free_threaded = config.build_flags().0.contains(&BuildFlag::Py_GIL_DISABLED);
    let target_ok = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_POINTER_WIDTH").as_deref() == Ok("64");
    let problem = if config.implementation() != PythonImplementation::CPython {
        Some(format!("{:?} is not CPython", config.implementation()))
    } else if !((3, 11)..=(3, 15)).contains(&version) {
        Some(format!(
            "CPython {}.{} is not supported yet",
            version.0, version.1
        ))
    } else if free_threaded {
        Some("the free-threaded build is not supported".to_owned())
    } else if matches!(config.target_abi().kind(), PythonAbiKind::Stable(_)) {
        Some(
            "a stable ABI (abi3) build cannot reach the interpreter state anywait swaps".to_owned(),
        )
    } else if !target_ok {
        Some("only 64-bit Linux is supported".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        println!("cargo:rustc-cfg=anywait_unsupported");
        println!("cargo:rustc-env=ANYWAIT_UNSUPPORTED=anywait does not support this interpreter: {problem}; it supports {SUPPORTED}");
        return;
    }

    let mut build = cc::Build::new();
    for dir in include_dirs(config.executable()) {
        let shim = multiarch_shim(&dir);
        build.include(&dir);
        if let Some(shim) = shim {
            build.include(shim);
        }
    }
    build.warnings(true).extra_warnings(true);
    write_layout_words(&build);
}

/// Compiles `csrc/layout_dump.c` against the target's headers, runs it, and writes the
/// layout table it prints to `$OUT_DIR/layout_words.rs` (a `[c_long; N]` literal).
/// The program is built for the target, since the table is the target's layout. When that
/// is another architecture (the aarch64 build cross-compiled on x86_64), it is linked
/// statically and runs under the emulator the kernel has registered for it (binfmt_misc),
/// which needs no loader or C library of the target's installed where it runs.
fn write_layout_words(build: &cc::Build) {
    println!("cargo:rerun-if-changed=csrc/layout_dump.c");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let exe = out.join("layout_dump");
    let cross = env::var("HOST").ok() != env::var("TARGET").ok();
    let mut compile = build.get_compiler().to_command();
    compile.arg("csrc/layout_dump.c").arg("-o").arg(&exe);
    if cross {
        compile.arg("-static");
    }
    let status = compile.status().expect("cannot run the C compiler");
    assert!(status.success(), "compiling csrc/layout_dump.c failed");
    let dump = Command::new(&exe).output().unwrap_or_else(|e| {
        panic!(
            "cannot run layout_dump ({e}){}",
            if cross {
                ": a cross build runs it for the target, which needs that architecture's \
                 emulator registered with binfmt_misc (qemu-user-static)"
            } else {
                ""
            }
        )
    });
    assert!(dump.status.success(), "layout_dump failed");
    let words = String::from_utf8(dump.stdout).expect("layout_dump printed non-UTF-8");
    std::fs::write(out.join("layout_words.rs"), words).expect("cannot write layout_words.rs");
}

/// Debian's `pyconfig.h` is a stub that includes `<x86_64-linux-gnu/pythonX.Y/pyconfig.h>`
/// from `<prefix>/include`. Adding that whole directory would also bring in the C library
/// headers of the interpreter's system, which may not match ours; so we add a directory
/// holding only a link to its multiarch subdirectory.
fn multiarch_shim(include: &Path) -> Option<PathBuf> {
    let stub = std::fs::read_to_string(include.join("pyconfig.h")).ok()?;
    // The stub names one multiarch directory per architecture, under #if: the target's is
    // the one whose triple starts with its architecture (and exists beside `include`).
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let (arch, real) = stub
        .lines()
        .filter_map(|l| l.trim_start_matches(['#', ' ']).strip_prefix("include <"))
        .filter_map(|rest| rest.strip_suffix("/pyconfig.h>"))
        .filter_map(|target| target.split('/').next())
        .filter(|arch| arch.starts_with(&format!("{target_arch}-")))
        .map(|arch| (arch, include.parent().map(|p| p.join(arch))))
        .find_map(|(arch, real)| real.filter(|r| r.is_dir()).map(|r| (arch, r)))?;
    let shim = PathBuf::from(env::var_os("OUT_DIR")?).join("multiarch");
    std::fs::create_dir_all(&shim).ok()?;
    let link = shim.join(arch);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&real, &link).ok()?;
    Some(shim)
}

/// Header directories, first match wins. `ANYWAIT_PYTHON_INCLUDE` is a `:`-separated
/// list, because Debian's `pyconfig.h` includes a multiarch one from `<prefix>/include`.
fn include_dirs(executable: Option<&str>) -> Vec<PathBuf> {
    if let Some(dirs) = env::var_os("ANYWAIT_PYTHON_INCLUDE") {
        return env::split_paths(&dirs).collect();
    }
    let python = executable.expect(
        "cannot find the target interpreter's headers: set ANYWAIT_PYTHON_INCLUDE or PYO3_PYTHON",
    );
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('include'))",
        ])
        .output()
        .expect("cannot run the target interpreter to find its headers");
    assert!(
        out.status.success(),
        "the target interpreter failed to report its include dir"
    );
    vec![PathBuf::from(
        String::from_utf8(out.stdout)
            .expect("non-UTF-8 include dir")
            .trim(),
    )]
}
